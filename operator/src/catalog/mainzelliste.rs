//! Mainzelliste: patient identity management (Tomcat), on PostgreSQL.
//!
//! Never exposed through the ingress: it holds identifying data (IDAT). Clients that need it
//! from outside the cluster get a site-specific route.
//!
//! Sources. The 1.13.0 source lives on Bitbucket and is not readable here. The 1.13 images are
//! built on `samply/tomcat-common` (`samply/docker-common@0.7.7`, read at `9c6a1cf`): its
//! entrypoint checks the image's mandatory variables, copies `*.docker.*` templates from `/` and
//! `/run/secrets/` into `WEB-INF/classes`, replaces every variable whose name contains the
//! component's name (`ML_…`) in them with `sed -i`, and writes the result without `.docker`
//! (`mainzelliste.conf`). How upstream runs 1.13 is read from `medicalinformatics/mainzelliste-gui`
//! (`docker-compose.prod.yml`, `mainzelliste.docker.conf` at `56f8a80`); the application itself
//! from the GitHub mirror of v1.10 (`cerbelding/medicalinformatics.mainzelliste@f6eee07`).
//!
//! How the pod meets the image:
//! - settings: `ML_DB_USER` / `ML_DB_PASS` (the names the template uses), `ML_API_KEY` from a
//!   Secret the site names (`apiKeySecretRef`);
//! - the site's configuration (`configSecretRef`, required): a `mainzelliste.docker.conf` from a
//!   Secret, mounted at `/run/secrets/` where the entrypoint picks it up instead of the image's
//!   built-in one. It carries the field definitions and the PID generator keys `k1`/`k2`/`k3`.
//!   Those keys decide every PID: the published example configurations use the publicly known
//!   1, 2, 3 (v1.10 `config/mainzelliste.conf.default:326-331`; mainzelliste-gui
//!   `.env.default:29-31` for its placeholders), and the 1.13 image's built-in template is not
//!   readable, so the operator never runs Mainzelliste on it. Keys are either written into that Secret's file or
//!   referenced there as `ML_PID_IDGENERATOR_RANDOM_1`…`_3` (upstream's 1.13 production template,
//!   mainzelliste-gui@56f8a80:mainzelliste.docker.conf:297-299) and supplied under `env` with
//!   `secretKeyRef`. They must never change once PIDs exist;
//! - the entrypoint rewrites templates inside `WEB-INF/classes`, which is a seeded directory (the
//!   image's content copied into an emptyDir first) under a read-only root;
//! - `TOMCAT_REVERSEPROXY_FQDN`, `RELAXED_QUERY_CHARS` and `DEPLOYMENT_CONTEXT` are refused:
//!   the first two make the entrypoint rewrite and `chown` `conf/server.xml`, the third moves
//!   the application within `webapps/`, all read-only here;
//! - the heap follows the memory limit (`CATALINA_OPTS`); `GET /` is the readiness signal.
//!
//! Values reach the configuration through `sed "s|NAME|value|g"` (common_entrypoint.sh:81-84): a
//! password or key containing `|`, `&` or `\` corrupts it, so the site's Secrets must avoid
//! those characters.
//!
//! Not verified, so not in the contract: the numeric uid of the 1.13 image's user (its
//! Dockerfile passes the user name to the base; `adduser` picks the next free uid), the 1.13
//! image's `MANDATORY_VARIABLES` list beyond what ≤1.10 and upstream's usage show, and the
//! defaults of the other `ML_DB_*` variables. Tomcat's `temp`, `work` and `logs` directories are
//! writable because Tomcat writes them, not because a MOSAIC-style source says so.
//!
//! Consent scans: upstream mounts a volume at `/usr/local/tomcat/consents` (mainzelliste-gui
//! `docker-compose.prod.yml`). The catalogue gives it none: an emptyDir would lose uploaded scans
//! at the next restart, so uploads fail instead (the directory is read-only) until the catalogue
//! models persistent storage for them.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::api::core::v1::{KeyToPath, SecretVolumeSource, Volume, VolumeMount};

use crate::api::SecretKeyRef;

use super::component::{Database, DatabaseNeed, DbEngine, Descriptor, Exposure, ReplicaLimit};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Required, Write, WriteKind};
use super::database;
use super::pod::{self, NONROOT, Presets, Res, RunAs, Workload};
use super::{CatalogError, Child, Component, Ctx, HTTP_8080, Part, SiteInput};

pub static COMPONENT: Descriptor = Descriptor {
    name: "mainzelliste",
    field: "mainzelliste",
    description: "the Mainzelliste identity management",
    spec: |c| c.mainzelliste.as_ref().map(|m| &m.common),
    minimal: "{apiKeySecretRef: {name: mainzelliste-api, key: api-key}, configSecretRef: {name: mainzelliste-config, key: mainzelliste.docker.conf}}",
    settings: |c| {
        c.mainzelliste
            .as_ref()
            .map(|m| &m.settings as &dyn std::any::Any)
    },
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::PostgreSql,
        name: "mainzelliste",
    }),
    replica_limit: Some(ReplicaLimit {
        max: 1,
        why: "it keeps sessions and tokens in memory",
    }),
    storage: false,
    needs: &[],
    checks,
    security_exceptions: &[],
    contracts: &[CONTRACT],
    build,
    defined: None,
};

/// Mainzelliste's own settings under `spec.components.mainzelliste`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The key API clients present (`ML_API_KEY`), from a Secret in the site's namespace.
    /// Mainzelliste does not start without it.
    pub api_key_secret_ref: SecretKeyRef,
    /// The site's Mainzelliste configuration file (`mainzelliste.docker.conf`: fields, ID types
    /// and the PID generator keys k1/k2/k3), from a Secret in the site's namespace. It replaces
    /// the image's built-in configuration, which is not published for 1.13; the published
    /// example configurations use the publicly known PID keys 1, 2, 3. `ML_*` names in it
    /// are replaced at start by the variables of the same name (the operator sets `ML_DB_*`,
    /// `ML_API_KEY` and `ML_ALLOWEDREMOTEADDRESSES`; further ones, e.g.
    /// `ML_PID_IDGENERATOR_RANDOM_1`, come from `env` with `secretKeyRef`). Never change the PID
    /// keys once PIDs exist: every PID depends on them.
    pub config_secret_ref: SecretKeyRef,
}

const PARTS: [Part; 1] = [Part {
    name: "mainzelliste",
    role: "identity-management",
    image: "mainzelliste",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    // Clinical systems register patients in it.
    entry_point: true,
    calls: &[],
    sidecars: &[],
    uses_database: true,
    uses_oidc: false,
}];

const PRESETS: Presets = Presets {
    small: Res {
        cpu: "100m",
        memory: "512Mi",
        cpu_limit: "1",
    },
    medium: Res {
        cpu: "250m",
        memory: "1Gi",
        cpu_limit: "2",
    },
    large: Res {
        cpu: "500m",
        memory: "2Gi",
        cpu_limit: "4",
    },
};

/// Where the entrypoint copies the configuration templates to and rewrites them.
const CLASSES: &str = "/usr/local/tomcat/webapps/ROOT/WEB-INF/classes";

/// Tomcat writes its work, temp and log directories; everything else stays read-only.
const WRITABLE: &[&str] = &[
    "/tmp",
    "/usr/local/tomcat/temp",
    "/usr/local/tomcat/work",
    "/usr/local/tomcat/logs",
];

/// The directory the entrypoint reads site templates from (a Docker secret upstream).
const SECRETS_DIR: &str = "/run/secrets";
/// The name the site's configuration gets there: the entrypoint copies it over the image's
/// template of the same name.
const CONFIG_FILE: &str = "mainzelliste.docker.conf";

/// Who may use the API key (`servers.0.allowedRemoteAdresses` in upstream's template): the
/// private IPv4 ranges pods get their addresses from, instead of ≤1.10's default `0.0.0.0/0`.
/// Mainzelliste compares the caller's address (IPv4 CIDR or exact address, `;` or `,`
/// separated, v1.10 Servers.java:126-140); the NetworkPolicy decides which pods get there at
/// all. A site that needs another list writes it into its configuration instead of the
/// placeholder.
const ALLOWED_REMOTE_ADDRESSES: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10";

/// Variables that make the entrypoint write where the pod is read-only.
const REFUSED_ENV: &[(&str, &str)] = &[
    (
        "TOMCAT_REVERSEPROXY_FQDN",
        "makes the entrypoint rewrite and chown /usr/local/tomcat/conf/server.xml (samply/docker-common@0.7.7:tomcat/scripts/tomcat_entrypoint.sh:19-46), which is read-only here; Mainzelliste is reached inside the cluster without a reverse proxy",
    ),
    (
        "RELAXED_QUERY_CHARS",
        "makes the entrypoint rewrite and chown /usr/local/tomcat/conf/server.xml (samply/docker-common@0.7.7:tomcat/scripts/tomcat_entrypoint.sh:48-54), which is read-only here",
    ),
    (
        "DEPLOYMENT_CONTEXT",
        "makes the entrypoint move the application within /usr/local/tomcat/webapps (samply/docker-common@0.7.7:tomcat/scripts/tomcat_entrypoint.sh:9-17), which is read-only here, and the health check expects it at /",
    ),
];

/// The 1.13 image runs as a user its Dockerfile names (`$COMPONENT`, group www-data); the uid
/// `adduser` gave it is not published, so the contract leaves it unknown. The catalogue runs it
/// as a fixed non-root uid: every path the image writes is a volume in this pod and the image's
/// files are world-readable (`chmod -R 755`).
const USER: ImageUser = ImageUser {
    declared: "$COMPONENT",
    uid: None,
    gid: None,
    cite: "samply/docker-common@0.7.7:tomcat/Dockerfile:25-31 (ONBUILD adduser --ingroup www-data $COMPONENT; chmod -R 755 $CATALINA_HOME; ONBUILD USER $COMPONENT). The numeric uid is not published",
};

/// The check for mandatory variables and its message (docker-common); the list is the image's
/// `MANDATORY_VARIABLES`, which for ≤1.10 held ML_DB_PASS and ML_API_KEY (beside the reverse
/// proxy host that 1.13 made optional) and which upstream's 1.13 usage sets.
const MANDATORY: &str = "Error: Mandatory variables not defined (see documentation):";

const CONTRACT: ImageContract = ImageContract {
    image: "mainzelliste",
    repository: "medicalinformatics/mainzelliste",
    source: "samply/docker-common@0.7.7 (base of the 1.13 images) + medicalinformatics/mainzelliste-gui@56f8a80 (upstream's 1.13 deployment) + cerbelding/medicalinformatics.mainzelliste@v1.10 (application; 1.13.0 is not readable)",
    program: None,
    reads: &[],
    user: USER,
    writes: &[Write {
        path: CLASSES,
        kind: WriteKind::Dir,
        why: "the entrypoint copies /*.docker.* and /run/secrets/*.docker.* here, rewrites them with sed -i and writes mainzelliste.conf beside them; the directory also holds the application's classes",
        cite: "samply/docker-common@0.7.7:scripts/common_entrypoint.sh:31-47,74-93",
    }],
    required: &[
        Required {
            name: "ML_DB_PASS",
            secret: true,
            message: MANDATORY,
            cite: "samply/docker-common@0.7.7:scripts/common_entrypoint.sh:16-29; medicalinformatics/mainzelliste-gui@56f8a80:mainzelliste.docker.conf:30 (db.password = ML_DB_PASS); cerbelding/medicalinformatics.mainzelliste@v1.10:docker/ml_entrypoint.sh:3",
        },
        Required {
            name: "ML_API_KEY",
            secret: true,
            message: MANDATORY,
            cite: "samply/docker-common@0.7.7:scripts/common_entrypoint.sh:16-29; medicalinformatics/mainzelliste-gui@56f8a80:mainzelliste.docker.conf:386 (servers.0.apiKey = ML_API_KEY); cerbelding/medicalinformatics.mainzelliste@v1.10:docker/ml_entrypoint.sh:3",
        },
    ],
    ports: &[8080],
    endpoints: &[Endpoint {
        path: "/",
        port: 8080,
        // Only with the application in ROOT, i.e. without DEPLOYMENT_CONTEXT (refused).
        needs: None,
        cite: "cerbelding/medicalinformatics.mainzelliste@v1.10:src/de/pseudonymisierung/mainzelliste/webservice/RootResource.java:43-84 (status and version, no API key); WebContent/WEB-INF/web.xml:14 (servlet at /*)",
    }],
    jvm: Some(Jvm {
        default_heap_mib: None,
        options_env: "CATALINA_OPTS",
        cite: "samply/docker-common@0.7.7:tomcat/Dockerfile:1 (FROM tomcat:9-jdk17-temurin-focal, no heap flags: the JVM takes 25% of the limit); tomcat/scripts/tomcat_entrypoint.sh:80 (catalina.sh run reads CATALINA_OPTS)",
    }),
};

/// Refuses extra env that would make the entrypoint write where the pod is read-only.
fn checks(site: &SiteInput) -> Vec<CatalogError> {
    let Some(spec) = site.spec.components.mainzelliste.as_ref() else {
        return Vec::new();
    };
    spec.common
        .env
        .iter()
        .filter_map(|e| {
            REFUSED_ENV
                .iter()
                .find(|(name, _)| *name == e.name)
                .map(|(name, why)| CatalogError::UnsupportedCombination {
                    component: Component::of(&COMPONENT),
                    field: COMPONENT.field,
                    detail: format!("env {name} {why}; remove it"),
                })
        })
        .collect()
}

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    // A fixed numeric uid: the image's USER is a name (see USER).
    w.security.run_as = RunAs::User(NONROOT);
    w.writable_dirs = WRITABLE;
    // The entrypoint rewrites the templates in place: the image's classes copied into an
    // emptyDir first (common_entrypoint.sh:74-93 runs under `bash -e`).
    w.seeded_dirs = &[CLASSES];
    // The template's JDBC settings (mainzelliste-gui@56f8a80:mainzelliste.docker.conf:27-30).
    w.set("ML_DB_DRIVER", "org.postgresql.Driver");
    w.set("ML_DB_TYPE", "postgresql");
    w.set("ML_ALLOWEDREMOTEADDRESSES", ALLOWED_REMOTE_ADDRESSES);
    // Tomcat 9 on Java 17 sets no heap: 25% of the limit by default. Mainzelliste matches
    // against the patient list in memory; upstream's 1.13 compose gives it 95%
    // (mainzelliste-gui@56f8a80:docker-compose.prod.yml:48), 75% leaves Tomcat its native share.
    w.set("CATALINA_OPTS", "-XX:MaxRAMPercentage=75");
    if let Some(db) = ctx.database() {
        w.env.push(db.host_var("ML_DB_HOST"));
        w.env.push(db.port_var("ML_DB_PORT"));
        w.env.push(db.name_var("ML_DB_NAME"));
        w.env.push(db.user_var("ML_DB_USER"));
        w.env.push(db.password_var("ML_DB_PASS"));
    }
    if let Some(settings) = ctx.settings::<Settings>() {
        let key = &settings.api_key_secret_ref;
        w.env
            .push(database::secret_env("ML_API_KEY", &key.name, &key.key));
        w.volumes.push(config_volume(&settings.config_secret_ref));
    }
    // `GET /` answers with the version once the configuration and the database connection are
    // initialised; Tomcat's connector alone accepts connections even when the application
    // failed to deploy. Liveness stays TCP so a slow database does not restart Tomcat.
    let ready = pod::http_probe("/", "http");
    w.startup = Some(pod::startup(ready.clone(), 300));
    w.readiness = Some(ready);
    w.liveness = Some(pod::tcp_probe("http"));
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}

/// The site's configuration Secret as `/run/secrets/mainzelliste.docker.conf`, read-only: the
/// entrypoint only copies it.
fn config_volume(r: &SecretKeyRef) -> (Volume, VolumeMount) {
    let name = "site-config".to_string();
    (
        Volume {
            name: name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(r.name.clone()),
                items: Some(vec![KeyToPath {
                    key: r.key.clone(),
                    path: CONFIG_FILE.to_string(),
                    mode: None,
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        VolumeMount {
            name,
            mount_path: SECRETS_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    )
}
