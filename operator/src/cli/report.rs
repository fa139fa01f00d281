//! `miracolix-operator report`: one signed report of a DizSite to the consortium hub (what the
//! CronJob of a DizSite with `spec.reporting` runs), and `report keygen`: the site's key, once.
//!
//! Exit status: 0 the hub has the report of this period (accepted now, or before); 2 it does
//! not (the hub refused it, naming its reason, or stayed unreachable through every retry; the
//! DizSite, Blaze or the key could not be read).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use clap::{Args, Subcommand};
use kube::Api;
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;

use crate::api::{DEFAULT_REPORT_TYPES, DizSite};
use crate::report::{self, HttpClient, Posted, Retry};

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: Option<ReportCommand>,
    #[command(flatten)]
    pub push: PushArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ReportCommand {
    /// Generate the site's report key once: prints the Secret (with the private key) to apply
    /// in the site's namespace, and the public key entry to register at the hub.
    Keygen(KeygenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The DizSite's name (its status says what the site runs).
    #[arg(long, env = "REPORT_SITE")]
    pub site: Option<String>,
    /// The DizSite's namespace (the CronJob sets it from the pod's namespace).
    #[arg(long, env = "REPORT_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// The hub's base URL; the report goes to `<hub-url>/api/v1/reports`.
    #[arg(long, env = "REPORT_HUB_URL")]
    pub hub_url: Option<String>,
    /// The FHIR base URL of the site's Blaze, e.g. `http://erlangen-blaze:8080/fhir`.
    #[arg(long, env = "REPORT_BLAZE_URL")]
    pub blaze_url: Option<String>,
    /// The site's private key (PKCS#8 PEM, Ed25519), as `report keygen` writes it.
    #[arg(long, env = "REPORT_KEY_FILE", default_value_t = format!("{}/{}", report::KEY_DIR, report::KEY_FILE))]
    pub key_file: String,
    /// A file holding the key's id, as registered at the hub.
    #[arg(long, env = "REPORT_KEY_ID_FILE", default_value_t = format!("{}/{}", report::KEY_DIR, report::KEY_ID_FILE))]
    pub key_id_file: String,
    /// PEM CA certificates to trust for the hub instead of the system bundle.
    #[arg(long, env = "REPORT_HUB_CA")]
    pub hub_ca: Option<PathBuf>,
    /// FHIR resource types to count, comma-separated.
    #[arg(long, env = "REPORT_RESOURCE_TYPES", value_delimiter = ',', default_values_t = DEFAULT_REPORT_TYPES.map(String::from))]
    pub resource_types: Vec<String>,
    /// The reporting period: one report per site and period.
    #[arg(long, env = "REPORT_INTERVAL_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub interval_minutes: u64,
    /// POST attempts while the hub is unreachable or answers 5xx.
    #[arg(long, env = "REPORT_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: u32,
    /// The first wait between attempts, doubled after each.
    #[arg(long, env = "REPORT_RETRY_DELAY_MS", default_value_t = 2000)]
    pub retry_delay_ms: u64,
    /// How long one request may take.
    #[arg(long, env = "REPORT_TIMEOUT_SECONDS", default_value_t = 30)]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// The site's id (`spec.siteId`): the hub registers the key under it.
    #[arg(long)]
    pub site: String,
    /// The DizSite's name, for the Secret's default name `<name>-report-key`; the site id when
    /// not given.
    #[arg(long)]
    pub name: Option<String>,
    /// The key's id at the hub; default `<site>-<YYYYMMDD>`.
    #[arg(long)]
    pub key_id: Option<String>,
    /// The Secret's name (`spec.reporting.keySecretName`).
    #[arg(long)]
    pub secret_name: Option<String>,
    /// The namespace of the DizSite, written into the Secret.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Also write the hub registration entry (JSON) to this file.
    #[arg(long)]
    pub registration_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportCliError {
    #[error("--{0} (or its environment variable) is required")]
    Missing(&'static str),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an Ed25519 PKCS#8 private key ({why})")]
    BadKey { path: String, why: String },
    #[error("{0}: the key id must be 1-253 characters without spaces")]
    BadKeyId(String),
    #[error("cannot read DizSite {namespace}/{name}: {source}")]
    Site {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot connect to the Kubernetes API: {0}")]
    Kube(String),
    #[error("the report was not delivered: {0}")]
    Report(#[from] report::ReportError),
    #[error("{0}")]
    Other(String),
}

pub fn main(args: &ReportArgs) -> ExitCode {
    let result = match &args.command {
        Some(ReportCommand::Keygen(k)) => keygen(k),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ReportCliError::Other(format!("cannot start the runtime: {e}")))
            .and_then(|rt| rt.block_on(push(&args.push))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(super::EXIT_ERROR)
        }
    }
}

fn read(path: &str) -> Result<Vec<u8>, ReportCliError> {
    std::fs::read(path).map_err(|source| ReportCliError::Read {
        path: path.to_string(),
        source,
    })
}

/// The site's key and key id, from the mounted Secret's files.
pub fn load_key(
    key_file: &str,
    key_id_file: &str,
) -> Result<(Ed25519KeyPair, String), ReportCliError> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject as _;
    let pem = read(key_file)?;
    let bad = |why: String| ReportCliError::BadKey {
        path: key_file.to_string(),
        why,
    };
    let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| bad(e.to_string()))?;
    let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
        .map_err(|e| bad(e.to_string()))?;
    let key_id = String::from_utf8_lossy(&read(key_id_file)?)
        .trim()
        .to_string();
    if key_id.is_empty() || key_id.len() > 253 || key_id.contains(char::is_whitespace) {
        return Err(ReportCliError::BadKeyId(key_id_file.to_string()));
    }
    Ok((key, key_id))
}

async fn push(args: &PushArgs) -> Result<(), ReportCliError> {
    let site_name = args
        .site
        .as_deref()
        .ok_or(ReportCliError::Missing("site"))?;
    let hub_url = args
        .hub_url
        .as_deref()
        .ok_or(ReportCliError::Missing("hub-url"))?;
    let blaze_url = args
        .blaze_url
        .as_deref()
        .ok_or(ReportCliError::Missing("blaze-url"))?;
    let (key, key_id) = load_key(&args.key_file, &args.key_id_file)?;
    let ca = match &args.hub_ca {
        Some(p) => Some(read(&p.to_string_lossy())?),
        None => None,
    };
    let client = HttpClient::new(ca.as_deref(), Duration::from_secs(args.timeout_seconds))?;
    // In the cluster: the pod's ServiceAccount, allowed to `get` this one DizSite; elsewhere
    // (the demo, a site admin trying it) the kubeconfig.
    let kube = kube::Client::try_default()
        .await
        .map_err(|e| ReportCliError::Kube(e.to_string()))?;
    let site = Api::<DizSite>::namespaced(kube, &args.namespace)
        .get(site_name)
        .await
        .map_err(|source| ReportCliError::Site {
            namespace: args.namespace.clone(),
            name: site_name.to_string(),
            source,
        })?;
    let run = report::Run {
        client: &client,
        blaze_url,
        hub_url,
        resource_types: &args.resource_types,
        interval: Duration::from_secs(args.interval_minutes * 60),
        key_id: &key_id,
        key: &key,
        retry: Retry {
            attempts: args.attempts,
            first_delay: Duration::from_millis(args.retry_delay_ms),
        },
    };
    let (sent, posted) = report::run(&site, chrono::Utc::now(), &run).await?;
    let outcome = match posted {
        Posted::Accepted => "accepted",
        Posted::Duplicate => "accepted before (the same report was retried)",
        Posted::AlreadyReported => "not needed: the hub has this period's report already",
    };
    // What left the site, for the Job's log.
    println!(
        "{}",
        serde_json::json!({
            "msg": format!("report {outcome}"),
            "siteId": sent.site_id,
            "sequence": sent.sequence,
            "release": sent.release.name,
            "dataMap": sent.data_map,
        })
    );
    Ok(())
}

/// PEM of a PKCS#8 document, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What `report keygen` prints: the Secret manifest (stdout) and the hub registration entry.
pub struct Generated {
    pub secret_yaml: String,
    pub registration: serde_json::Value,
}

pub fn generate(args: &KeygenArgs, today: chrono::NaiveDate) -> Result<Generated, ReportCliError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| ReportCliError::Other("cannot generate a key".into()))?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| ReportCliError::Other(format!("generated key: {e}")))?;
    let key_id = args
        .key_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", args.site, today.format("%Y%m%d")));
    if key_id.is_empty() || key_id.len() > 253 || key_id.contains(char::is_whitespace) {
        return Err(ReportCliError::BadKeyId(key_id));
    }
    let name = args.name.as_deref().unwrap_or(&args.site);
    let secret_name = args
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{name}-report-key"));
    let mut metadata = serde_json::json!({"name": secret_name});
    if let Some(ns) = &args.namespace {
        metadata["namespace"] = ns.clone().into();
    }
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": {
            report::KEY_ID_FILE: key_id,
            report::KEY_FILE: pem("PRIVATE KEY", pkcs8.as_ref()),
        },
    });
    let secret_yaml = format!(
        "# The report key of site {site}: apply it in the DizSite's namespace and keep no other copy.\n# The public half is registered at the hub (see the registration entry).\n{}",
        crate::yaml::to_string(&secret).map_err(|e| ReportCliError::Other(e.to_string()))?,
        site = args.site,
    );
    let registration = serde_json::json!({
        "siteId": args.site,
        "keys": [{"keyId": key_id, "ed25519": miracolix_hub::report::public_key_base64(&key)}],
    });
    Ok(Generated {
        secret_yaml,
        registration,
    })
}

fn keygen(args: &KeygenArgs) -> Result<(), ReportCliError> {
    let g = generate(args, chrono::Utc::now().date_naive())?;
    print!("{}", g.secret_yaml);
    let line = g.registration.to_string();
    eprintln!(
        "Register this key at the hub (an entry of the hub's --sites file, or add the key to the site's existing entry):\n{line}"
    );
    if let Some(path) = &args.registration_file {
        std::fs::write(path, format!("{line}\n")).map_err(|source| ReportCliError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_secret_whose_key_loads_and_matches_the_registration() {
        let args = KeygenArgs {
            site: "erlangen".into(),
            name: None,
            key_id: None,
            secret_name: None,
            namespace: Some("diz-erlangen".into()),
            registration_file: None,
        };
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
        let g = generate(&args, today).expect("keygen");
        let secret: serde_json::Value = crate::yaml::from_multi_doc(&g.secret_yaml)
            .expect("yaml")
            .remove(0);
        assert_eq!(secret["metadata"]["name"], "erlangen-report-key");
        assert_eq!(secret["metadata"]["namespace"], "diz-erlangen");
        let dir = std::env::temp_dir().join(format!("report-keygen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (k, i) = (dir.join("private-key.pem"), dir.join("key-id"));
        std::fs::write(
            &k,
            secret["stringData"]["private-key.pem"]
                .as_str()
                .expect("pem"),
        )
        .expect("write");
        std::fs::write(&i, secret["stringData"]["key-id"].as_str().expect("id")).expect("write");
        let (key, key_id) =
            load_key(&k.to_string_lossy(), &i.to_string_lossy()).expect("the key loads");
        assert_eq!(key_id, "erlangen-20261130");
        assert_eq!(g.registration["siteId"], "erlangen");
        assert_eq!(g.registration["keys"][0]["keyId"], "erlangen-20261130");
        assert_eq!(
            g.registration["keys"][0]["ed25519"],
            miracolix_hub::report::public_key_base64(&key)
        );
        // Two runs, two keys: nothing is derived from the site id.
        let other = generate(&args, today).expect("keygen");
        assert_ne!(other.registration, g.registration);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_cronjob_command_line_parses() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from(["miracolix-operator", "report"])
            .expect("report needs no flag on the command line (env in the CronJob)");
        let crate::cli::Command::Report(args) = cli.command else {
            panic!("not report")
        };
        assert!(args.command.is_none());
        assert_eq!(args.push.resource_types.len(), DEFAULT_REPORT_TYPES.len());
        let cli = crate::cli::Cli::try_parse_from([
            "miracolix-operator",
            "report",
            "keygen",
            "--site",
            "erlangen",
        ])
        .expect("keygen");
        let crate::cli::Command::Report(args) = cli.command else {
            panic!("not report")
        };
        assert!(matches!(args.command, Some(ReportCommand::Keygen(_))));
    }
}
