//! `miracolix-operator render`: the objects the controller would apply for a site, for GitOps
//! pipelines that do not run the operator in the cluster.

use std::path::PathBuf;
use std::sync::Arc;

use crate::admission::{self, AdmissionError};
use crate::api::{ComponentRelease, DizSite};
use crate::catalog::{self, SiteInput};
use crate::controller::apply::rendered;
use crate::controller::certification::Certifier;
use crate::controller::dizsite::select;
use crate::release::window;
use crate::yaml::{self, YamlError};

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// File with the DizSite.
    #[arg(short = 'f', long = "filename")]
    pub site: PathBuf,
    /// File(s) with ComponentReleases (multi-document YAML is fine).
    #[arg(long = "release", required = true)]
    pub releases: Vec<PathBuf>,
    /// Directory of trusted release-signing public keys (`<keyId>.pem`). Releases are verified
    /// exactly as the operator does.
    #[arg(long)]
    pub trusted_keys: PathBuf,
    /// Render as if CloudNativePG were installed in the target cluster.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cnpg_available: bool,
    /// The ComponentRelease (by name, from the `--release` files) the site runs now, as the
    /// operator's rollout record says (`kubectl get configmap <site>-rollout`). Without it the
    /// site is rendered as a first install.
    #[arg(long, value_name = "RELEASE", conflicts_with = "from_cluster")]
    pub current: Option<String>,
    /// Read the release the site runs from its rollout record in the cluster
    /// (`<site>-rollout` in the site's namespace, through the kubeconfig, `KUBECONFIG` or
    /// `~/.kube/config`); a site without a record is rendered as a first install.
    #[arg(long)]
    pub from_cluster: bool,
    /// With `--from-cluster`: the kubeconfig context to read from (the current one by default).
    #[arg(long, requires = "from_cluster")]
    pub context: Option<String>,
    /// The time to plan for (RFC 3339, e.g. 2026-02-03T01:30:00Z); now by default. Waves and
    /// maintenance windows are judged at this time, exactly as the controller would.
    #[arg(long, value_name = "TIME")]
    pub at: Option<k8s_openapi::jiff::Timestamp>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Yaml {
        path: String,
        source: Box<YamlError>,
    },
    /// Refused as the API server would refuse it (schema, unknown fields, CEL rules).
    #[error("{path}: {source}")]
    Refused {
        path: String,
        source: AdmissionError,
    },
    #[error("{path}: not a valid {kind}: {source}")]
    Decode {
        path: String,
        kind: &'static str,
        source: serde_json::Error,
    },
    #[error("{path}: expected exactly one DizSite, found {found}")]
    NotOneSite { path: String, found: usize },
    #[error("cannot load trusted keys: {0}")]
    Keys(String),
    #[error(transparent)]
    Select(#[from] select::SelectError),
    #[error("the site cannot be deployed:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    #[error(
        "--current {0}: no ComponentRelease of that name in the --release files; give the file of the release the site runs"
    )]
    UnknownCurrent(String),
    #[error("cannot read the site's rollout record from the cluster: {0}")]
    Cluster(String),
    #[error("cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Write(Box<YamlError>),
}

/// The documents of `kind` in a (multi-document) YAML file; other kinds are skipped, so one file
/// may hold a whole GitOps directory's worth of objects. Each is admitted as the API server would
/// admit it (strict field validation, defaults, CEL rules) before it is used: what a cluster
/// refuses is never rendered.
fn read_docs<T: serde::de::DeserializeOwned>(
    path: &PathBuf,
    kind: &'static str,
) -> Result<Vec<T>, RenderError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RenderError::Read {
        path: shown.clone(),
        source,
    })?;
    let docs: Vec<serde_json::Value> =
        yaml::from_multi_doc(&text).map_err(|source| RenderError::Yaml {
            path: shown.clone(),
            source: Box::new(source),
        })?;
    docs.into_iter()
        .filter(|d| d.get("kind").and_then(serde_json::Value::as_str) == Some(kind))
        .map(|d| {
            let admitted = admission::admit(&d).map_err(|source| RenderError::Refused {
                path: shown.clone(),
                source,
            })?;
            serde_json::from_value(admitted).map_err(|source| RenderError::Decode {
                path: shown.clone(),
                kind,
                source,
            })
        })
        .collect()
}

/// The documents `render` prints, in apply order.
/// What the controller knows of a site besides its spec: the release it runs (`None`: nothing
/// yet) and the time.
#[derive(Clone, Debug)]
pub struct RenderState {
    pub current: Current,
    pub now: k8s_openapi::jiff::Timestamp,
}

/// What the site runs.
#[derive(Clone, Debug)]
pub enum Current {
    /// Nothing yet: a first install.
    Nothing,
    /// The release of this name among the given ones.
    Named(String),
    /// What the site's rollout record in the cluster says.
    Record(Box<crate::release::record::Record>),
}

impl RenderState {
    /// A first install, now.
    pub fn first_install() -> Self {
        Self {
            current: Current::Nothing,
            now: k8s_openapi::jiff::Timestamp::now(),
        }
    }
}

pub fn render(
    site: &DizSite,
    releases: &[ComponentRelease],
    certifier: &dyn Certifier,
    cnpg_available: bool,
) -> Result<Vec<serde_json::Value>, RenderError> {
    render_at(
        site,
        releases,
        certifier,
        cnpg_available,
        &RenderState::first_install(),
    )
}

/// The objects the controller would apply for the site in the given state: the same rollout
/// plan (waves, windows, never backwards, revocations) decides the release.
pub fn render_at(
    site: &DizSite,
    releases: &[ComponentRelease],
    certifier: &dyn Certifier,
    cnpg_available: bool,
    state: &RenderState,
) -> Result<Vec<serde_json::Value>, RenderError> {
    if let Some(w) = &site.spec.maintenance_window {
        window::check(w).map_err(|e| RenderError::Invalid(vec![e.with_field_path()]))?;
    }
    let record = match &state.current {
        Current::Nothing => None,
        Current::Named(name) => {
            let current = releases
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| RenderError::UnknownCurrent(name.clone()))?;
            Some(crate::release::record::Record::running(name, &current.spec))
        }
        Current::Record(record) => Some(record.as_ref().clone()),
    };
    let candidates = select::releases(releases, record.as_ref(), certifier);
    let release = select::resolve(select::for_site(
        site,
        &candidates,
        &[],
        record.as_ref(),
        state.now,
    )?);
    let name = site.metadata.name.clone().unwrap_or_default();
    let namespace = site
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let uid = site.metadata.uid.clone().unwrap_or_default();
    let input = SiteInput {
        name: &name,
        namespace: &namespace,
        uid: &uid,
        spec: &site.spec,
        release: &release,
        cnpg_available,
    };
    let children = catalog::build(&input)
        .map_err(|errs| RenderError::Invalid(errs.iter().map(ToString::to_string).collect()))?;
    let mut out = Vec::with_capacity(children.len());
    for child in &children {
        let mut v = rendered(child)?;
        // Without the uid of a live DizSite an owner reference would be invalid; outside the
        // operator, the GitOps tool owns the objects instead.
        if uid.is_empty()
            && let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut())
        {
            meta.remove("ownerReferences");
        }
        out.push(v);
    }
    Ok(out)
}

pub fn run(args: &RenderArgs) -> Result<String, RenderError> {
    let sites: Vec<DizSite> = read_docs(&args.site, "DizSite")?;
    let [site] = sites.as_slice() else {
        return Err(RenderError::NotOneSite {
            path: args.site.display().to_string(),
            found: sites.len(),
        });
    };
    let mut releases: Vec<ComponentRelease> = Vec::new();
    for p in &args.releases {
        releases.extend(read_docs::<ComponentRelease>(p, "ComponentRelease")?);
    }
    let trust = crate::release::trust::TrustStore::from_dir(&args.trusted_keys)
        .map_err(|e| RenderError::Keys(e.to_string()))?;
    let certifier: Arc<dyn Certifier> = Arc::new(trust);
    let current = match (&args.current, args.from_cluster) {
        (Some(name), _) => Current::Named(name.clone()),
        (None, true) => match read_record(site, args.context.as_deref())? {
            Some(record) => Current::Record(Box::new(record)),
            None => Current::Nothing,
        },
        (None, false) => Current::Nothing,
    };
    let state = RenderState {
        current,
        now: args.at.unwrap_or_else(k8s_openapi::jiff::Timestamp::now),
    };
    let docs = render_at(
        site,
        &releases,
        certifier.as_ref(),
        args.cnpg_available,
        &state,
    )?;
    yaml::to_multi_doc(&docs).map_err(|e| RenderError::Write(Box::new(e)))
}

/// The site's rollout record from the cluster (`None`: the site has none yet, or the cluster has
/// no such site). Only the record is read: the releases come from the files, so what is rendered
/// is exactly what those files and that record make the controller apply.
fn read_record(
    site: &DizSite,
    context: Option<&str>,
) -> Result<Option<crate::release::record::Record>, RenderError> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::config::{KubeConfigOptions, Kubeconfig};

    let cluster = |e: String| RenderError::Cluster(e);
    let namespace = site.metadata.namespace.clone().ok_or_else(|| {
        cluster("the DizSite file has no metadata.namespace: the record is namespaced".into())
    })?;
    let name = crate::release::record::record_name(&site.metadata.name.clone().unwrap_or_default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| cluster(e.to_string()))?;
    let data = runtime.block_on(async {
        let kubeconfig = Kubeconfig::read().map_err(|e| e.to_string())?;
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| e.to_string())?;
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
        let found = tokio::time::timeout(std::time::Duration::from_secs(15), api.get_opt(&name))
            .await
            .map_err(|_| "no answer within 15s".to_string())?
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(found.map(|cm| cm.data.unwrap_or_default()))
    });
    match data.map_err(cluster)? {
        None => Ok(None),
        Some(data) => crate::release::record::Record::from_data(&data)
            .map(Some)
            .map_err(|e| cluster(format!("{namespace}/{name}: {e}"))),
    }
}
