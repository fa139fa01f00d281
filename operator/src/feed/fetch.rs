//! One conditional GET of the feed: `If-None-Match` with the last ETag, `304` means unchanged
//! (RFC 9110 §13.1.2). HTTPS with the system's CA bundle or `--feed-ca`; plain HTTP only when
//! the URL says `http://` (a hub on loopback or behind a local proxy).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use miracolix_hub::feed::{API_VERSION, KIND, ReleaseFeed};

/// A whole request (connect, answer, body) takes at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// A feed larger than this is refused (a few hundred releases are well under 1 MiB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a fetch failed; [`FetchError::kind`] is the `error` label of
/// `miracolix_feed_fetch_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} did not answer within {}s", TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not serve a release feed: {message}")]
    Invalid { url: String, message: String },
}

impl FetchError {
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Unreachable { .. } => "unreachable",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Status { .. } => "http-status",
            FetchError::Invalid { .. } => "invalid",
        }
    }
}

/// What a fetch returned.
#[derive(Debug)]
pub enum Fetched {
    /// `304`: the feed is the one of the ETag sent.
    NotModified,
    /// `200` with a feed document and its ETag (if the server sent one).
    Feed {
        feed: ReleaseFeed,
        etag: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the feed CA file {path}: {message}")]
    Ca { path: String, message: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("--feed-url must start with https:// or http://, not {0:?}")]
    Scheme(String),
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The feed's HTTP client, built once.
#[derive(Clone)]
pub struct FeedClient {
    url: String,
    client: Client<Https, Empty<Bytes>>,
}

impl std::fmt::Debug for FeedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl FeedClient {
    /// A client of `url`, trusting the CA certificates in `ca` (PEM) if given, else the
    /// system's CA bundle.
    pub fn new(url: &str, ca: Option<&Path>) -> Result<Self, ClientError> {
        let https = url.starts_with("https://");
        if !https && !url.starts_with("http://") {
            return Err(ClientError::Scheme(url.to_string()));
        }
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match ca {
            Some(path) => builder.with_tls_config(tls_config(path)?),
            None if https => builder
                .with_native_roots()
                .map_err(|e| ClientError::Tls(e.to_string()))?,
            // Plain HTTP needs no roots (and an image without a CA bundle must still work).
            None => builder.with_tls_config(
                tls_builder()?
                    .with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
        };
        let connector = if https {
            builder.https_only().enable_http1().build()
        } else {
            builder.https_or_http().enable_http1().build()
        };
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(Self {
            url: url.to_string(),
            client,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One GET, conditional on `etag`.
    pub async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(TIMEOUT, self.fetch_inner(etag)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout {
                url: self.url.clone(),
            }),
        }
    }

    async fn fetch_inner(&self, etag: Option<&str>) -> Result<Fetched, FetchError> {
        let url = || self.url.clone();
        let mut req =
            http::Request::get(&self.url).header(http::header::ACCEPT, "application/json");
        if let Some(tag) = etag {
            req = req.header(http::header::IF_NONE_MATCH, tag);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Unreachable {
                url: url(),
                message: e.to_string(),
            })?;
        let res = self.client.request(req).await.map_err(|e| {
            // The connector's chain says which step failed (DNS, connect, TLS).
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            FetchError::Unreachable {
                url: url(),
                message,
            }
        })?;
        let status = res.status();
        if status == http::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url(),
                status: status.as_u16(),
            });
        }
        let etag = res
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(res.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| FetchError::Invalid {
                url: url(),
                message: format!("cannot read the body: {e}"),
            })?
            .to_bytes();
        let feed = parse(&body).map_err(|message| FetchError::Invalid {
            url: url(),
            message,
        })?;
        Ok(Fetched::Feed { feed, etag })
    }
}

/// The feed document of a body, or why it is not one.
pub fn parse(body: &[u8]) -> Result<ReleaseFeed, String> {
    let feed: ReleaseFeed = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if feed.api_version != API_VERSION || feed.kind != KIND {
        return Err(format!(
            "apiVersion {:?} and kind {:?}, expected {API_VERSION} {KIND}",
            feed.api_version, feed.kind
        ));
    }
    Ok(feed)
}

fn tls_builder() -> Result<
    tokio_rustls::rustls::ConfigBuilder<
        tokio_rustls::rustls::ClientConfig,
        tokio_rustls::rustls::WantsVerifier,
    >,
    ClientError,
> {
    tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientError::Tls(e.to_string()))
}

/// TLS trusting exactly the certificates of a PEM file (the consortium's CA).
fn tls_config(path: &Path) -> Result<tokio_rustls::rustls::ClientConfig, ClientError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let ca_err = |message: String| ClientError::Ca {
        path: path.display().to_string(),
        message,
    };
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_err("no CERTIFICATE in it".to_string()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
    }
    Ok(tls_builder()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_release_feed_is_a_feed() {
        assert!(parse(br#"{"apiVersion":"hub.miracum.org/v1","kind":"ReleaseFeed","releases":[],"revocations":[]}"#).is_ok());
        let wrong_kind = parse(br#"{"apiVersion":"hub.miracum.org/v1","kind":"Matrix","releases":[],"revocations":[]}"#)
            .expect_err("wrong kind");
        assert!(wrong_kind.contains("Matrix"), "{wrong_kind}");
        assert!(parse(b"<html>login</html>").is_err());
        assert!(parse(br#"{"apiVersion":"hub.miracum.org/v1","kind":"ReleaseFeed"}"#).is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("feed-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let e = FeedClient::new("https://hub.example/feed/v1", Some(&path)).expect_err("refused");
        assert!(e.to_string().contains("ca.pem"), "{e}");
        let missing = FeedClient::new("https://hub.example/feed/v1", Some(&dir.join("nope.pem")))
            .expect_err("missing");
        assert!(missing.to_string().contains("nope.pem"), "{missing}");
        assert!(matches!(
            FeedClient::new("ftp://hub.example/feed", None),
            Err(ClientError::Scheme(_))
        ));
    }
}
