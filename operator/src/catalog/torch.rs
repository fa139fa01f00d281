//! TORCH: extracts the data of approved projects from the FHIR server into an output volume.
//!
//! Not exposed through the ingress: extractions are triggered through the site's DSF. TORCH
//! authenticates nobody: whoever its NetworkPolicy lets in (the `access-torch` label) can start,
//! read and delete extractions of full patient data, so never publish it.
//!
//! Cohorts are selected with CQL on the FHIR server (`TORCH_USE_CQL`, on by default and pinned
//! here); TORCH calls FLARE only with CQL off, and FLARE answers that call only with its cohort
//! endpoint on (medizininformatik-initiative/torch@v1.0.0:src/main/java/de/medizininformatikinitiative/torch/service/CohortQueryService.java:56-62,
//! flare@v2.4.0:src/main/resources/application.yml:3), which would hand patient ids to every
//! caller FLARE admits. So TORCH needs only Blaze.
//!
//! Towards Blaze, TORCH logs in as an OAuth client only when the issuer, the client id and the
//! client secret are all set (config/WebConfig.java:54-56,111-138): the operator passes them only
//! together. A site with `spec.auth.oidc` but no `clientSecretRef` gets TORCH without
//! authentication, and Blaze answers it with 401 until the site names the client secret.
//!
//! **Results are served by a file server next to TORCH**, as upstream deploys it
//! (docs/deployment.md:26-46,54-85): TORCH writes results to its output volume and hands out
//! links below `TORCH_OUTPUT_FILE_SERVER_URL`, but serves no files itself. The pod runs
//! nginx-unprivileged (release image `torch-files`) with the volume mounted read-only and a
//! configuration of the operator's (`root` on the volume, no directory listing, port 8081 since
//! TORCH has 8080); the links name this site's TORCH Service on that port. Like TORCH itself the
//! file server authenticates nobody: its port is open to exactly TORCH's callers.
//!
//! Image facts were read at medizininformatik-initiative/torch `v1.0.0` (the pinned version).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PersistentVolumeClaimVolumeSource, ResourceRequirements, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::component::{
    DatabaseNeed, Descriptor, Exposure, Need, ReplicaLimit, Sidecar, no_checks, no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Required, Write, WriteKind};
use super::pod::{self, Presets, Res, RunAs, Security, Workload, WorkloadKind};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, Port, blaze};

pub static COMPONENT: Descriptor = Descriptor {
    name: "torch",
    field: "torch",
    description: "the TORCH data extraction",
    spec: |c| c.torch.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::None,
    replica_limit: Some(ReplicaLimit {
        max: 1,
        why: "its data lives on one ReadWriteOnce volume",
    }),
    storage: true,
    needs: &[Need {
        purpose: "the FHIR server",
        one_of: &[blaze::PROVIDER],
    }],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[CONTRACT, FILES_CONTRACT],
    build,
    defined: None,
};

const PARTS: [Part; 1] = [Part {
    name: "torch",
    role: "extraction",
    image: "torch",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    // The site's DSF triggers extractions.
    entry_point: true,
    calls: &[],
    sidecars: &[Sidecar {
        image: FILES_IMAGE,
        port: FILES_PORT,
    }],
    uses_database: false,
    uses_oidc: true,
}];

/// What the TORCH image demands.
///
/// Not in it: `/tmp` (the JVM's, general behaviour; writable here all the same), the truststore
/// the entrypoint regenerates only when CA files are mounted at `/app/certs`
/// (docker-entrypoint.sh:15-37; the catalogue mounts none), and `/actuator/health/liveness` and
/// `/readiness`, which Spring Boot adds on Kubernetes (framework behaviour, not read here).
/// Release image key of the result file server.
pub const FILES_IMAGE: &str = "torch-files";
/// The file server's port: TORCH has 8080 in the same pod.
const FILES_PORT: Port = Port {
    name: "files",
    port: 8081,
};

/// nginx-unprivileged, as upstream TORCH deploys its file server. Facts read at
/// nginxinc/docker-nginx-unprivileged `1.27.2` (docs/upstream/ohdsi.md reads the same base for
/// Atlas). The operator runs `nginx` with its own configuration, so the image's entrypoint
/// scripts (which rewrite `conf.d/default.conf`) do not run.
const FILES_CONTRACT: ImageContract = ImageContract {
    image: FILES_IMAGE,
    repository: "nginxinc/nginx-unprivileged",
    source: "nginxinc/docker-nginx-unprivileged@1.27.2",
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "101",
        uid: Some(101),
        gid: Some(101),
        cite: "nginxinc/docker-nginx-unprivileged@1.27.2:mainline/alpine-slim/Dockerfile:15-21,138 (addgroup -g 101, adduser -u 101, USER $UID)",
    },
    writes: &[Write {
        path: "/tmp",
        kind: WriteKind::Dir,
        why: "the pid file and the client, proxy and fastcgi temp paths of the unprivileged build",
        cite: "nginxinc/docker-nginx-unprivileged@1.27.2:mainline/alpine-slim/Dockerfile:117-120",
    }],
    required: &[],
    // What the image's own default configuration listens on; the operator's configuration
    // moves it to 8081.
    ports: &[8080],
    endpoints: &[],
    jvm: None,
};

const CONTRACT: ImageContract = ImageContract {
    image: "torch",
    repository: "ghcr.io/medizininformatik-initiative/torch",
    source: "medizininformatik-initiative/torch@v1.0.0",
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "1001",
        uid: Some(1001),
        gid: Some(1001),
        cite: "medizininformatik-initiative/torch@v1.0.0:Dockerfile:14-16,22",
    },
    writes: &[Write {
        path: OUTPUT_PATH,
        kind: WriteKind::Dir,
        why: "extraction results, job state and reports (TORCH_RESULTS_DIR), reloaded at start",
        cite: "medizininformatik-initiative/torch@v1.0.0:src/main/java/de/medizininformatikinitiative/torch/config/OutputDirectoryCheck.java:33-47",
    }],
    required: &[Required {
        name: "TORCH_FHIR_URL",
        secret: false,
        message: "FHIR URL is required",
        cite: "medizininformatik-initiative/torch@v1.0.0:src/main/java/de/medizininformatikinitiative/torch/config/FhirProperties.java:14",
    }],
    ports: &[8080],
    endpoints: &[Endpoint {
        // spring-boot-starter-actuator (pom.xml:53) with `health` exposed.
        path: "/actuator/health",
        port: 8080,
        needs: None,
        cite: "medizininformatik-initiative/torch@v1.0.0:src/main/resources/application.yml:59-63",
    }],
    jvm: Some(Jvm {
        default_heap_mib: Some(4096),
        options_env: "JAVA_TOOL_OPTIONS",
        cite: "medizininformatik-initiative/torch@v1.0.0:Dockerfile:5",
    }),
};

/// The image's own user, which owns /app (Dockerfile:14-16,22).
const UID: i64 = 1001;

/// The image defaults to a 4 GiB heap (Dockerfile:5) and upstream's example runs 8 GiB
/// (docs/deployment.md:106): with [`HEAP_PERCENT`], medium gives about the first and large about
/// the second.
const PRESETS: Presets = Presets {
    small: Res {
        cpu: "500m",
        memory: "2Gi",
        cpu_limit: "2",
    },
    medium: Res {
        cpu: "1",
        memory: "6Gi",
        cpu_limit: "4",
    },
    large: Res {
        cpu: "2",
        memory: "12Gi",
        cpu_limit: "8",
    },
};

const HEAP_PERCENT: &str = "70.0";

pub const OUTPUT_PATH: &str = "/app/output";
pub const DEFAULT_OUTPUT_SIZE: &str = "10Gi";

/// `<site>-torch-output`.
pub fn output_claim_name(site: &str) -> String {
    format!("{site}-torch-output")
}

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let part = &PARTS[0];
    let claim = output_claim_name(ctx.site.name);
    let mut children =
        vec![pod::pvc(ctx, claim.clone(), part, DEFAULT_OUTPUT_SIZE).map_err(|e| vec![e])?];
    let mut w = Workload::deployment(part, &PRESETS);
    w.security = Security {
        run_as: RunAs::User(UID),
        read_only_root: true,
    };
    // The output volume is ReadWriteOnce: the old pod must release it before the new one starts.
    w.kind = WorkloadKind::Deployment { recreate: true };
    w.volumes.push((
        Volume {
            name: "output".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim,
                read_only: None,
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: "output".into(),
            mount_path: OUTPUT_PATH.into(),
            ..VolumeMount::default()
        },
    ));
    let own = ctx.url("torch", HTTP_8080.port);
    // The default `output/` is the same directory (WORKDIR /app); pinned to the volume.
    w.set("TORCH_RESULTS_DIR", OUTPUT_PATH);
    w.set(
        "TORCH_FHIR_URL",
        format!(
            "{}{}",
            ctx.url("blaze", HTTP_8080.port),
            super::blaze::CONTEXT_PATH
        ),
    );
    // Written into the status URL of every extraction (the 202's Content-Location); the default
    // `http://localhost:8080` would send the DSF polling itself (application.yml:5-7,
    // docs/configuration.md:24-28).
    w.set("TORCH_BASE_URL", own.clone());
    // The base of every result link (application.yml:46-49): the file server next to TORCH.
    w.set(
        "TORCH_OUTPUT_FILE_SERVER_URL",
        ctx.url("torch", FILES_PORT.port),
    );
    w.files.push((FILES_CONF_PATH, files_conf()));
    w.sidecars.push(file_server(ctx).map_err(|e| vec![e])?);
    // Cohorts by CQL on Blaze, never through FLARE (see the module comment); documented in
    // docs/configuration.md:219-227, default true (application.yml:43).
    w.set("TORCH_USE_CQL", "true");
    // The image sets `-Xmx4g` in JAVA_TOOL_OPTIONS (Dockerfile:5), more than the small limit;
    // replacing the variable replaces it.
    w.set(
        "JAVA_TOOL_OPTIONS",
        format!("-XX:MaxRAMPercentage={HEAP_PERCENT}"),
    );
    pod::fhir_oauth_client(ctx, &mut w, "TORCH_FHIR_OAUTH");
    let probe = || pod::http_probe("/actuator/health", "http");
    w.startup = Some(pod::startup(probe(), 300));
    w.readiness = Some(probe());
    w.liveness = Some(probe());
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}

/// Where the file server's configuration is mounted (not over the image's own files).
const FILES_CONF_PATH: &str = "/etc/nginx/torch/nginx.conf";

/// The file server's configuration: the output volume read-only at its root, no listing, temp
/// paths and pid under `/tmp` (the only writable path), as upstream's nginx.conf.template does.
fn files_conf() -> String {
    format!(
        "worker_processes 1;\n\
         pid /tmp/nginx.pid;\n\
         error_log /dev/stderr warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20 access_log /dev/stdout;\n\
         \x20 client_body_temp_path /tmp/client_temp;\n\
         \x20 proxy_temp_path /tmp/proxy_temp;\n\
         \x20 fastcgi_temp_path /tmp/fastcgi_temp;\n\
         \x20 uwsgi_temp_path /tmp/uwsgi_temp;\n\
         \x20 scgi_temp_path /tmp/scgi_temp;\n\
         \x20 server {{\n\
         \x20   listen {port};\n\
         \x20   root {OUTPUT_PATH};\n\
         \x20   autoindex off;\n\
         \x20 }}\n\
         }}\n",
        port = FILES_PORT.port
    )
}

/// nginx serving the output volume read-only, with the same restricted profile as TORCH.
fn file_server(ctx: &Ctx) -> Result<Container, CatalogError> {
    let image = ctx.image(FILES_IMAGE)?;
    Ok(Container {
        name: "files".into(),
        image: Some(super::image_ref(image)),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "nginx".into(),
            "-c".into(),
            FILES_CONF_PATH.into(),
            "-g".into(),
            "daemon off;".into(),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(FILES_PORT.name.into()),
            container_port: FILES_PORT.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity("32Mi".into())),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("200m".into())),
                ("memory".to_string(), Quantity("64Mi".into())),
            ])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(pod::container_security(Security {
            run_as: RunAs::User(101),
            read_only_root: true,
        })),
        // No probe: the port is the operator's configuration, not the image's (the contract
        // knows only the image's default); nginx either starts listening on it or exits, which
        // the pod's status shows. TORCH's own probes decide the pod's readiness.
        volume_mounts: Some(vec![
            VolumeMount {
                name: "output".into(),
                mount_path: OUTPUT_PATH.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            // TORCH's own /tmp emptyDir: nginx keeps its pid and temp files there.
            VolumeMount {
                name: pod::volume_name("/tmp"),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
            // The configuration is TORCH's only mounted file (`w.files`), so its volume is
            // `file-0`; TORCH's container gets it too, at a path it never reads.
            VolumeMount {
                name: "file-0".into(),
                mount_path: FILES_CONF_PATH.into(),
                sub_path: Some(pod::file_key(FILES_CONF_PATH)),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    })
}
