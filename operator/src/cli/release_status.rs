//! `miracolix-operator release status`: which release every site runs, across clusters
//! (kubeconfig contexts) or from the consortium hub's release matrix (`--hub URL`, which needs
//! no access to any site's cluster).
//!
//! The I/O (kubeconfig, one connection per context; one request to the hub) is kept apart from
//! the formatting, which is a pure function of the rows so it can be tested without a cluster.
//!
//! Exit status: 0 every source answered; 3 a context or the hub could not be reached (the rows
//! of the sources that answered are still printed, the unreachable contexts as `Unreachable`
//! rows); 2 the command could not run (unreadable kubeconfig, the hub refused the token, bad
//! answer).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use miracolix_hub::matrix::Matrix;

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config, ResourceExt};
use serde::Serialize;

use crate::api::DizSite;
use crate::api::conditions::{READY, RELEASE_UP_TO_DATE};

/// A release manager looks at many hospitals at once; one unreachable cluster must not stall
/// the whole report.
const PER_CONTEXT_TIMEOUT: Duration = Duration::from_secs(15);

/// Exit status when a context or the hub could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Kubeconfig context to ask (repeatable). Default: every context of the kubeconfig.
    #[arg(long = "context")]
    pub contexts: Vec<String>,
    /// Read the release matrix from the consortium hub at this URL (e.g.
    /// https://hub.miracum.example) instead of the kubeconfig contexts.
    #[arg(long, conflicts_with = "contexts")]
    pub hub: Option<String>,
    /// File holding the hub's reader token (sent as a bearer token).
    #[arg(long, env = "MIRACOLIX_HUB_TOKEN_FILE", requires = "hub")]
    pub hub_token_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(#[from] KubeconfigError),
    #[error("the kubeconfig has no contexts")]
    NoContexts,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot read the hub token {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Hub(String),
}

/// One line of the matrix: a site in a context, or a context that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    pub context: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The site's health: its `Ready` condition, `status (reason)`.
    pub state: String,
    /// Where the site stands in the rollout: its `ReleaseUpToDate` condition, `status (reason)`
    /// (e.g. `False (WaitingForWave)`, `False (WaitingForMaintenanceWindow)`, `False (Held)`,
    /// `False (Upgrading)`, `True (UpToDate)`). A site that is Ready may still wait for a
    /// newer release: this column, not `state`, says whether the rollout reached it.
    pub rollout: String,
}

impl StatusRow {
    pub fn from_site(context: &str, site: &DizSite) -> Self {
        let status = site.status.as_ref();
        let condition = |type_: &str| match status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        {
            Some(c) if c.reason.is_empty() => c.status.clone(),
            Some(c) => format!("{} ({})", c.status, c.reason),
            None => "Unknown".to_string(),
        };
        let state = condition(READY);
        let rollout = condition(RELEASE_UP_TO_DATE);
        Self {
            context: context.to_string(),
            site_id: Some(site.spec.site_id.clone()),
            namespace: site.namespace(),
            name: Some(site.name_any()),
            current: status.and_then(|s| s.current_release.clone()),
            target: status.and_then(|s| s.target_release.clone()),
            state,
            rollout,
        }
    }

    pub fn unreachable(context: &str, error: &str) -> Self {
        Self {
            context: context.to_string(),
            site_id: None,
            namespace: None,
            name: None,
            current: None,
            target: None,
            state: format!("Unreachable: {error}"),
            rollout: "Unknown".to_string(),
        }
    }
}

/// The rows as an aligned text table, one line per row plus a header.
pub fn format_table(rows: &[StatusRow]) -> String {
    const HEADER: [&str; 6] = ["SITE", "CONTEXT", "CURRENT", "TARGET", "ROLLOUT", "STATE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
            [
                dash(&r.site_id),
                r.context.clone(),
                dash(&r.current),
                dash(&r.target),
                r.rollout.clone(),
                // A multi-line error would break the table's columns.
                r.state.replace(['\n', '\r'], " "),
            ]
        })
        .collect();
    align(HEADER, &cells)
}

/// The hub's matrix as an aligned text table: one line per site.
pub fn format_hub_table(matrix: &Matrix) -> String {
    const HEADER: [&str; 5] = ["SITE", "RELEASE", "LAST REPORT", "STATE", "COMPONENTS"];
    let cells: Vec<[String; 5]> = matrix
        .sites
        .iter()
        .map(|s| {
            let state = match (s.last_report, s.stale, s.ready) {
                (None, _, _) => "NeverReported",
                (Some(_), true, _) => "Stale",
                (Some(_), false, true) => "Ready",
                (Some(_), false, false) => "NotReady",
            };
            let components = s
                .components
                .iter()
                .map(|c| {
                    let version = c
                        .version
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default();
                    let ready = if c.ready { "ready" } else { "NOT READY" };
                    format!("{}{version} {ready}", c.name)
                })
                .collect::<Vec<_>>()
                .join(", ");
            [
                s.site_id.clone(),
                s.release
                    .as_ref()
                    .map(|r| r.name.clone())
                    .unwrap_or_else(|| "-".into()),
                s.last_report
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "-".into()),
                state.to_string(),
                if components.is_empty() {
                    "-".into()
                } else {
                    components
                },
            ]
        })
        .collect();
    align(HEADER, &cells)
}

/// Columns padded to their widest cell, the last one not padded.
fn align<const N: usize>(header: [&str; N], cells: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: [&str; N]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in cells {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// The rows as a JSON array.
pub fn format_json(rows: &[StatusRow]) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(rows)?;
    s.push('\n');
    Ok(s)
}

/// Rows sorted for reading: by site, then context; unreachable contexts last.
pub fn sort_rows(rows: &mut [StatusRow]) {
    rows.sort_by(|a, b| {
        (a.site_id.is_none(), &a.site_id, &a.context, &a.namespace).cmp(&(
            b.site_id.is_none(),
            &b.site_id,
            &b.context,
            &b.namespace,
        ))
    });
}

pub fn run(args: &StatusArgs) -> Result<ExitCode, StatusError> {
    if let Some(hub) = &args.hub {
        return run_hub(hub, args);
    }
    let kubeconfig = Kubeconfig::read()?;
    let contexts: Vec<String> = if args.contexts.is_empty() {
        kubeconfig.contexts.iter().map(|c| c.name.clone()).collect()
    } else {
        args.contexts.clone()
    };
    if contexts.is_empty() {
        return Err(StatusError::NoContexts);
    }
    let runtime = runtime()?;
    let mut rows = runtime.block_on(async {
        let queries = contexts.iter().map(|c| rows_for_context(&kubeconfig, c));
        futures::future::join_all(queries).await
    });
    let mut rows: Vec<StatusRow> = rows.drain(..).flatten().collect();
    sort_rows(&mut rows);
    let text = match args.output {
        OutputFormat::Table => format_table(&rows),
        OutputFormat::Json => format_json(&rows)?,
    };
    print!("{text}");
    Ok(exit_status(&rows))
}

/// 0, or [`EXIT_UNREACHABLE`] when a context did not answer: a report with a hospital missing
/// must not look complete to a script.
pub fn exit_status(rows: &[StatusRow]) -> ExitCode {
    if rows.iter().any(|r| r.site_id.is_none()) {
        ExitCode::from(EXIT_UNREACHABLE)
    } else {
        ExitCode::SUCCESS
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, StatusError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StatusError::Runtime)
}

/// Why the hub's matrix could not be read.
#[derive(Debug)]
enum HubFailure {
    /// No connection, no answer in time, or the hub said it is unavailable (5xx).
    Unreachable(String),
    /// The hub answered, but not with a matrix (wrong token, wrong URL).
    Refused(String),
}

fn run_hub(hub: &str, args: &StatusArgs) -> Result<ExitCode, StatusError> {
    let token = match &args.hub_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| StatusError::Token {
                    path: path.display().to_string(),
                    source,
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let url = format!(
        "{}{}",
        hub.trim_end_matches('/'),
        miracolix_hub::server::MATRIX_PATH
    );
    let runtime = runtime()?;
    let fetched = runtime.block_on(async {
        tokio::time::timeout(PER_CONTEXT_TIMEOUT, fetch_matrix(&url, token.as_deref()))
            .await
            .unwrap_or_else(|_| {
                Err(HubFailure::Unreachable(format!(
                    "no answer within {}s",
                    PER_CONTEXT_TIMEOUT.as_secs()
                )))
            })
    });
    let matrix = match fetched {
        Ok(m) => m,
        Err(HubFailure::Unreachable(e)) => {
            eprintln!("error: the hub {hub} is unreachable: {e}");
            return Ok(ExitCode::from(EXIT_UNREACHABLE));
        }
        Err(HubFailure::Refused(e)) => return Err(StatusError::Hub(format!("the hub {hub}: {e}"))),
    };
    let text = match args.output {
        OutputFormat::Table => format_hub_table(&matrix),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(&matrix)?;
            s.push('\n');
            s
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn fetch_matrix(url: &str, token: Option<&str>) -> Result<Matrix, HubFailure> {
    let unreachable = |e: &dyn std::fmt::Display| HubFailure::Unreachable(e.to_string());
    let mut req = http::Request::get(url).header(http::header::ACCEPT, "application/json");
    if let Some(token) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| HubFailure::Refused(format!("bad URL {url}: {e}")))?;
    let builder = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    let sent = if url.starts_with("https://") {
        // The system's CA bundle (the image ships one).
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| unreachable(&e))?
            .https_only()
            .enable_http1()
            .build();
        builder.build(https).request(req).await
    } else {
        // Plain HTTP: a hub on loopback or behind a local proxy; no CA bundle needed.
        builder.build_http().request(req).await
    };
    let res = sent.map_err(|e| {
        // The connector's error says which step failed (DNS, connect, TLS).
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        HubFailure::Unreachable(message)
    })?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(&e))?
        .to_bytes();
    if status.is_server_error() {
        return Err(HubFailure::Unreachable(format!("HTTP {status}")));
    }
    if !status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(HubFailure::Refused(format!("HTTP {status} {detail}")));
    }
    serde_json::from_slice(&body)
        .map_err(|e| HubFailure::Refused(format!("the answer is not a release matrix: {e}")))
}

async fn rows_for_context(kubeconfig: &Kubeconfig, context: &str) -> Vec<StatusRow> {
    match tokio::time::timeout(PER_CONTEXT_TIMEOUT, list_sites(kubeconfig, context)).await {
        Ok(Ok(sites)) => sites
            .iter()
            .map(|s| StatusRow::from_site(context, s))
            .collect(),
        Ok(Err(e)) => vec![StatusRow::unreachable(context, &e)],
        Err(_) => vec![StatusRow::unreachable(
            context,
            &format!("no answer within {}s", PER_CONTEXT_TIMEOUT.as_secs()),
        )],
    }
}

async fn list_sites(kubeconfig: &Kubeconfig, context: &str) -> Result<Vec<DizSite>, String> {
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .map_err(|e| e.to_string())?;
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    let list = Api::<DizSite>::all(client)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(list.items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::reasons;

    fn row(
        site: &str,
        context: &str,
        current: &str,
        target: Option<&str>,
        state: &str,
    ) -> StatusRow {
        StatusRow {
            context: context.to_string(),
            site_id: Some(site.to_string()),
            namespace: Some("diz".to_string()),
            name: Some(site.to_string()),
            current: Some(current.to_string()),
            target: target.map(str::to_string),
            state: state.to_string(),
            rollout: "True (UpToDate)".to_string(),
        }
    }

    fn sample() -> Vec<StatusRow> {
        let mut rows = vec![
            StatusRow::unreachable("mainz-prod", "connection refused\nretry later"),
            row(
                "mainz",
                "mainz-test",
                "stable-2026.1",
                Some("stable-2026.2"),
                "False (Upgrading)",
            ),
            row(
                "erlangen",
                "erlangen-prod",
                "stable-2026.2",
                None,
                "True (Ready)",
            ),
        ];
        sort_rows(&mut rows);
        rows
    }

    #[test]
    fn table_is_aligned_sorted_and_shows_unreachable_contexts() {
        let table = format_table(&sample());
        let expected = "\
SITE      CONTEXT        CURRENT        TARGET         ROLLOUT          STATE
erlangen  erlangen-prod  stable-2026.2  -              True (UpToDate)  True (Ready)
mainz     mainz-test     stable-2026.1  stable-2026.2  True (UpToDate)  False (Upgrading)
-         mainz-prod     -              -              Unknown          Unreachable: connection refused retry later
";
        assert_eq!(table, expected);
    }

    #[test]
    fn empty_table_has_a_header() {
        assert_eq!(
            format_table(&[]),
            "SITE  CONTEXT  CURRENT  TARGET  ROLLOUT  STATE\n"
        );
    }

    #[test]
    fn json_is_an_array_of_rows() {
        let json = format_json(&sample()).expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("parses");
        let rows = value.as_array().expect("array");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["siteId"], "erlangen");
        assert_eq!(rows[0]["current"], "stable-2026.2");
        assert!(rows[0].get("target").is_none());
        assert_eq!(rows[2]["context"], "mainz-prod");
        assert_eq!(
            rows[2]["state"],
            "Unreachable: connection refused\nretry later"
        );
    }

    #[test]
    fn row_from_a_site_reads_status_and_ready_condition() {
        use crate::api::{DizSiteSpec, DizSiteStatus, ReleaseRef};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let mut site = DizSite::new(
            "uker",
            DizSiteSpec {
                site_id: "erlangen".to_string(),
                display_name: None,
                release: ReleaseRef::default(),
                components: Default::default(),
                ingress: None,
                auth: None,
                maintenance_window: None,
                network_policy: None,
                deletion_policy: Default::default(),
                paused: false,
                reporting: None,
            },
        );
        site.metadata.namespace = Some("diz".to_string());
        let row = StatusRow::from_site("ctx", &site);
        assert_eq!(row.state, "Unknown");
        assert_eq!(row.current, None);
        site.status = Some(DizSiteStatus {
            current_release: Some("stable-2026.1".to_string()),
            target_release: Some("stable-2026.2".to_string()),
            conditions: vec![
                Condition {
                    type_: READY.to_string(),
                    status: "True".to_string(),
                    reason: reasons::READY_REASON.to_string(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                },
                Condition {
                    type_: RELEASE_UP_TO_DATE.to_string(),
                    status: "False".to_string(),
                    reason: reasons::WAITING_FOR_MAINTENANCE_WINDOW.to_string(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                },
            ],
            ..DizSiteStatus::default()
        });
        let row = StatusRow::from_site("ctx", &site);
        assert_eq!(row.site_id.as_deref(), Some("erlangen"));
        assert_eq!(row.namespace.as_deref(), Some("diz"));
        assert_eq!(row.current.as_deref(), Some("stable-2026.1"));
        assert_eq!(row.target.as_deref(), Some("stable-2026.2"));
        // Ready, yet not reached by the rollout: the row says both.
        assert_eq!(row.state, "True (Ready)");
        assert_eq!(row.rollout, "False (WaitingForMaintenanceWindow)");
        assert!(format_table(&[row]).contains("False (WaitingForMaintenanceWindow)"));
    }
}
