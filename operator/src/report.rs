//! The site's report to the consortium hub (docs/consortium.md): what the CronJob a DizSite with
//! `spec.reporting` runs (`miracolix-operator report`).
//!
//! One run: read the DizSite's status (release and component health), ask the site's Blaze
//! `GET [base]/<Type>?_summary=count` for each resource type, obfuscate the counts
//! ([`miracolix_hub::report::obfuscate`]: nothing from 1 to 4 leaves the site), sign the report
//! with the site's key ([`miracolix_hub::report::sign_report`], the hub's own format) and post
//! it, retrying while the hub is unreachable or answers 5xx.
//!
//! Idempotent per period: the report's `sequence` is the start of the period it belongs to
//! (milliseconds since the epoch), so every run of one period carries the same sequence. A
//! retried POST of the same envelope is a `duplicate` at the hub; a second run in the same
//! period (the Job's pod restarted) is `replayed` (409), which means the hub already has this
//! period's report: done, not a failure.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt as _, Full};
use miracolix_hub::report::{
    ComponentHealth, DEFAULT_FLOOR, ReleaseRef, Report, SignedReport, obfuscate,
};
use ring::signature::Ed25519KeyPair;

use crate::api::DizSite;

/// Where the key Secret is mounted in the reporter's pod, and the two files in it (what
/// `report keygen` writes into the Secret).
pub const KEY_DIR: &str = "/etc/miracolix-report/key";
pub const KEY_FILE: &str = "private-key.pem";
pub const KEY_ID_FILE: &str = "key-id";
/// Where the hub's CA Secret (`ca.crt`) is mounted, when the site names one.
pub const CA_DIR: &str = "/etc/miracolix-report/hub-ca";
pub const CA_FILE: &str = "ca.crt";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "the DizSite runs no release yet (status.currentRelease or currentReleaseFingerprint is empty): nothing to report until its first release is deployed"
    )]
    NoRelease,
    #[error("resource type {0:?} is not a FHIR resource type name")]
    BadResourceType(String),
    #[error("Blaze at {url}: {problem}")]
    Blaze { url: String, problem: String },
    #[error("the hub refused the report (HTTP {status}, reason {reason}): {message}")]
    Refused {
        status: u16,
        reason: String,
        message: String,
    },
    #[error("the hub at {url} could not be reached after {attempts} attempt(s): {last}")]
    Unreachable {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0}")]
    Http(String),
}

/// What the DizSite's status says about the site, as it goes into the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFacts {
    pub site_id: String,
    pub release: ReleaseRef,
    pub components: Vec<ComponentHealth>,
}

/// The facts of `site`: its id, the release it runs (name and fingerprint) and each enabled
/// component's health (ready when every desired replica is ready; the running image's short
/// digest as its version).
pub fn facts(site: &DizSite) -> Result<SiteFacts, ReportError> {
    let status = site.status.clone().unwrap_or_default();
    let (Some(name), Some(fingerprint)) =
        (status.current_release, status.current_release_fingerprint)
    else {
        return Err(ReportError::NoRelease);
    };
    let components = status
        .components
        .iter()
        .filter(|c| c.enabled)
        .map(|c| ComponentHealth {
            name: c.name.clone(),
            // The digest, shortened as `docker images` does: the release fingerprint already
            // identifies exactly what runs; this tells people which image of it.
            version: c
                .image
                .as_deref()
                .and_then(|i| i.split_once('@'))
                .map(|(_, digest)| digest.chars().take("sha256:".len() + 12).collect()),
            ready: c.replicas > 0 && c.ready_replicas >= c.replicas,
        })
        .collect();
    Ok(SiteFacts {
        site_id: site.spec.site_id.clone(),
        release: ReleaseRef { name, fingerprint },
        components,
    })
}

/// The start of the period `now` falls in, in milliseconds since the epoch: the report's
/// `sequence`, the same for every run of one period and growing from one period to the next.
pub fn period_sequence(now: DateTime<Utc>, interval: Duration) -> u64 {
    let secs = u64::try_from(now.timestamp()).unwrap_or(0);
    let step = interval.as_secs().max(1);
    (secs / step) * step * 1000
}

/// The report of one period, counts obfuscated: this is all that leaves the site.
pub fn build(
    facts: &SiteFacts,
    raw_counts: &BTreeMap<String, u64>,
    now: DateTime<Utc>,
    interval: Duration,
) -> Report {
    Report {
        site_id: facts.site_id.clone(),
        sequence: period_sequence(now, interval),
        generated_at: now,
        release: facts.release.clone(),
        components: facts.components.clone(),
        data_map: obfuscate(raw_counts, DEFAULT_FLOOR),
    }
}

/// A FHIR resource type name (what may go into Blaze's URL path and the hub's Data Map).
pub fn is_resource_type(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphabetic())
}

/// The HTTP client of a run: plain HTTP (Blaze inside the cluster, a hub on loopback) and
/// HTTPS with the image's CA bundle or the hub's own CA.
pub struct HttpClient {
    inner: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
    timeout: Duration,
}

impl HttpClient {
    /// `ca_pem`: the hub's CA certificates; trusted instead of the system bundle when given.
    pub fn new(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, ReportError> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match ca_pem {
            Some(pem) => {
                use rustls_pki_types::CertificateDer;
                use rustls_pki_types::pem::PemObject as _;
                let mut roots = tokio_rustls::rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| {
                        ReportError::Http(format!("hub CA: not a PEM certificate: {e}"))
                    })?;
                    roots
                        .add(cert)
                        .map_err(|e| ReportError::Http(format!("hub CA: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(ReportError::Http(
                        "hub CA: the file holds no certificate".into(),
                    ));
                }
                let provider =
                    std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
                let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| ReportError::Http(format!("TLS: {e}")))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                builder.with_tls_config(config)
            }
            None => builder
                .with_native_roots()
                .map_err(|e| ReportError::Http(format!("system CA bundle: {e}")))?,
        };
        let connector = builder.https_or_http().enable_http1().build();
        Ok(Self {
            inner:
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(connector),
            timeout,
        })
    }

    async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(http::StatusCode, Bytes), String> {
        let call = async {
            let res = self.inner.request(req).await.map_err(|e| {
                // The connector's error says which step failed (DNS, connect, TLS).
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message.push_str(&format!(": {s}"));
                    source = s.source();
                }
                message
            })?;
            let status = res.status();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer within {} s", self.timeout.as_secs()))?
    }
}

/// Blaze's count of one resource type: `GET [base]/<Type>?_summary=count`, a searchset Bundle
/// whose `total` is the count (FHIR R4 search, `_summary=count`).
pub async fn count(
    client: &HttpClient,
    blaze_base: &str,
    resource_type: &str,
) -> Result<u64, ReportError> {
    if !is_resource_type(resource_type) {
        return Err(ReportError::BadResourceType(resource_type.to_string()));
    }
    let url = format!(
        "{}/{resource_type}?_summary=count",
        blaze_base.trim_end_matches('/')
    );
    let fail = |problem: String| ReportError::Blaze {
        url: url.clone(),
        problem,
    };
    let req = http::Request::get(&url)
        .header(http::header::ACCEPT, "application/fhir+json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| fail(e.to_string()))?;
    let (status, body) = client.send(req).await.map_err(fail)?;
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}")));
    }
    let bundle: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))?;
    bundle
        .get("total")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| fail("the answer is not a Bundle with a total".into()))
}

/// How the hub took the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Stored as this period's report.
    Accepted,
    /// The same envelope was stored before (an earlier attempt whose answer was lost).
    Duplicate,
    /// The hub has a report of this period (or a later one) already: a rerun of the period.
    AlreadyReported,
}

/// One POST of `signed` to `<hub>/api/v1/reports`. `Err(Ok(refused))` is final, `Err(Err(why))`
/// is worth retrying (no connection, no answer, 5xx).
async fn post_once(
    client: &HttpClient,
    url: &str,
    body: &Bytes,
) -> Result<Posted, Result<ReportError, String>> {
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.clone()))
        .map_err(|e| Ok(ReportError::Http(format!("bad hub URL {url}: {e}"))))?;
    let (status, answer) = client.send(req).await.map_err(Err)?;
    if status.is_server_error() {
        return Err(Err(format!("HTTP {status}")));
    }
    let json: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    match status.as_u16() {
        201 => Ok(Posted::Accepted),
        200 if field("status") == "duplicate" => Ok(Posted::Duplicate),
        409 if field("reason") == "replayed" => Ok(Posted::AlreadyReported),
        code => Err(Ok(ReportError::Refused {
            status: code,
            reason: match field("reason") {
                "" => "none".to_string(),
                r => r.to_string(),
            },
            message: match field("error") {
                "" => String::from_utf8_lossy(&answer).chars().take(500).collect(),
                m => m.to_string(),
            },
        })),
    }
}

/// How often and how patiently to post.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    /// The first wait; doubled after each failed attempt.
    pub first_delay: Duration,
}

/// Posts the same signed envelope until the hub answers, with exponential backoff between
/// attempts. A refusal (4xx other than a rerun) is final at once: sending it again would be
/// refused again.
pub async fn post(
    client: &HttpClient,
    hub_url: &str,
    signed: &SignedReport,
    retry: Retry,
) -> Result<Posted, ReportError> {
    let url = format!(
        "{}{}",
        hub_url.trim_end_matches('/'),
        miracolix_hub::report::PATH
    );
    let body = Bytes::from(serde_json::to_vec(signed)?);
    let mut delay = retry.first_delay;
    let mut last = String::new();
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        match post_once(client, &url, &body).await {
            Ok(posted) => return Ok(posted),
            Err(Ok(refused)) => return Err(refused),
            Err(Err(why)) => {
                tracing::warn!(attempt, error = %why, "the hub did not take the report");
                last = why;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
    Err(ReportError::Unreachable {
        url,
        attempts,
        last,
    })
}

/// Everything one run needs besides the DizSite.
pub struct Run<'a> {
    pub client: &'a HttpClient,
    pub blaze_url: &'a str,
    pub hub_url: &'a str,
    pub resource_types: &'a [String],
    pub interval: Duration,
    pub key_id: &'a str,
    pub key: &'a Ed25519KeyPair,
    pub retry: Retry,
}

/// One report of `site`: count, build, sign, post. Returns the report as sent and how the hub
/// took it.
pub async fn run(
    site: &DizSite,
    now: DateTime<Utc>,
    r: &Run<'_>,
) -> Result<(Report, Posted), ReportError> {
    let facts = facts(site)?;
    let mut raw = BTreeMap::new();
    for t in r.resource_types {
        raw.insert(t.clone(), count(r.client, r.blaze_url, t).await?);
    }
    let report = build(&facts, &raw, now, r.interval);
    let signed = miracolix_hub::report::sign_report(&report, r.key_id, r.key)?;
    let posted = post(r.client, r.hub_url, &signed, r.retry).await?;
    Ok((report, posted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ComponentStatus, DizSiteSpec, DizSiteStatus};

    fn site(with_release: bool) -> DizSite {
        let spec: DizSiteSpec = serde_json::from_value(serde_json::json!({
            "siteId": "erlangen", "release": {"name": "miracolix-2026.1"}
        }))
        .expect("spec");
        let mut s = DizSite::new("erlangen", spec);
        s.status = Some(DizSiteStatus {
            current_release: with_release.then(|| "miracolix-2026.1".to_string()),
            current_release_fingerprint: with_release.then(|| "ab".repeat(32)),
            components: vec![
                ComponentStatus {
                    name: "blaze".into(),
                    enabled: true,
                    image: Some(format!(
                        "docker.io/samply/blaze@sha256:{}",
                        "0123456789ab".repeat(5)
                    )),
                    replicas: 1,
                    ready_replicas: 1,
                },
                ComponentStatus {
                    name: "flare".into(),
                    enabled: true,
                    image: None,
                    replicas: 1,
                    ready_replicas: 0,
                },
                ComponentStatus {
                    name: "dqa".into(),
                    enabled: false,
                    ..ComponentStatus::default()
                },
            ],
            ..DizSiteStatus::default()
        });
        s
    }

    #[test]
    fn facts_come_from_the_status_of_enabled_components() {
        let f = facts(&site(true)).expect("facts");
        assert_eq!(f.site_id, "erlangen");
        assert_eq!(f.release.name, "miracolix-2026.1");
        assert_eq!(
            f.components,
            [
                ComponentHealth {
                    name: "blaze".into(),
                    version: Some("sha256:0123456789ab".into()),
                    ready: true
                },
                ComponentHealth {
                    name: "flare".into(),
                    version: None,
                    ready: false
                },
            ]
        );
        assert!(matches!(facts(&site(false)), Err(ReportError::NoRelease)));
    }

    /// Fake counts of every size: what leaves the site has no count from 1 to 4, and the hub's
    /// own check of the signed report accepts it.
    #[test]
    fn the_report_is_obfuscated_before_it_is_signed() {
        let f = facts(&site(true)).expect("facts");
        let raw: BTreeMap<String, u64> = [
            ("Patient", 48_000),
            ("Encounter", 0),
            ("Condition", 1),
            ("Observation", 4),
            ("Procedure", 5),
            ("Specimen", 2),
            ("Consent", 6),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let now: DateTime<Utc> = "2026-11-29T22:17:05Z".parse().expect("time");
        let report = build(&f, &raw, now, Duration::from_secs(3600));
        for (t, &n) in &report.data_map {
            assert!(!(1..5).contains(&n), "{t}: {n} would leave the site");
        }
        assert_eq!(report.data_map["Condition"], 5);
        assert_eq!(report.data_map["Encounter"], 0);
        assert_eq!(report.data_map["Consent"], 6);
        assert_eq!(report.data_map["Patient"], 48_000);
        let key = miracolix_hub::testing::demo_key(0).expect("key");
        let registry = miracolix_hub::testing::demo_registry(&["erlangen"]).expect("registry");
        let signed =
            miracolix_hub::report::sign_report(&report, "erlangen-2026", &key).expect("sign");
        let opened = miracolix_hub::report::open(
            &serde_json::to_vec(&signed).expect("json"),
            &registry,
            DEFAULT_FLOOR,
        )
        .expect("the hub opens it");
        assert_eq!(opened.report, report);
    }

    #[test]
    fn one_sequence_per_period_growing_between_periods() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let hour = Duration::from_secs(3600);
        let a = period_sequence(at("2026-11-29T22:00:00Z"), hour);
        assert_eq!(a, period_sequence(at("2026-11-29T22:59:59Z"), hour));
        assert!(period_sequence(at("2026-11-29T23:00:00Z"), hour) > a);
        assert_eq!(a % 3_600_000, 0);
        let quarter = Duration::from_secs(900);
        assert_eq!(
            period_sequence(at("2026-11-29T22:14:59Z"), quarter),
            period_sequence(at("2026-11-29T22:00:00Z"), quarter)
        );
        assert!(
            period_sequence(at("2026-11-29T22:15:00Z"), quarter)
                > period_sequence(at("2026-11-29T22:14:59Z"), quarter)
        );
    }

    #[test]
    fn resource_type_names() {
        for ok in ["Patient", "MedicationAdministration"] {
            assert!(is_resource_type(ok), "{ok}");
        }
        for bad in [
            "",
            "patient",
            "Patient/1",
            "Patient?x=1",
            "Pa tient",
            "../x",
        ] {
            assert!(!is_resource_type(bad), "{bad}");
        }
    }
}
