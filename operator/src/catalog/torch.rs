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
//! **Result download is not served yet.** TORCH writes results to its output volume and hands out
//! links below `TORCH_OUTPUT_FILE_SERVER_URL`, but serves no files itself: upstream serves the
//! volume with an nginx sidecar (docs/deployment.md:26-46,54-85), and no such image is part of
//! the release. The links name this site's TORCH Service (`/output/…`), where TORCH answers 404,
//! instead of the caller's own localhost (the default); until a file server is added, results
//! are read from the volume `<site>-torch-output`.
//!
//! Image facts were read at medizininformatik-initiative/torch `v1.0.0` (the pinned version).

use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Volume, VolumeMount};

use super::component::{
    DatabaseNeed, Descriptor, Exposure, Need, ReplicaLimit, no_checks, no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Required, Write, WriteKind};
use super::pod::{self, Presets, Res, RunAs, Security, Workload, WorkloadKind};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, blaze};

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
    contracts: &[CONTRACT],
    build,
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
    uses_database: false,
    uses_oidc: true,
}];

/// What the TORCH image demands.
///
/// Not in it: `/tmp` (the JVM's, general behaviour; writable here all the same), the truststore
/// the entrypoint regenerates only when CA files are mounted at `/app/certs`
/// (docker-entrypoint.sh:15-37; the catalogue mounts none), and `/actuator/health/liveness` and
/// `/readiness`, which Spring Boot adds on Kubernetes (framework behaviour, not read here).
const CONTRACT: ImageContract = ImageContract {
    image: "torch",
    repository: "ghcr.io/medizininformatik-initiative/torch",
    source: "medizininformatik-initiative/torch@v1.0.0",
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
    // The base of every result link (application.yml:46-49); see the module comment: nothing
    // serves it yet.
    w.set("TORCH_OUTPUT_FILE_SERVER_URL", format!("{own}/output"));
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
