//! TORCH: extracts the data of approved projects from the FHIR server into an output volume.
//!
//! Not exposed through the ingress: extractions are triggered through the site's DSF.

use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Volume, VolumeMount};

use super::component::{
    DatabaseNeed, Descriptor, Exposure, Need, ReplicaLimit, no_checks, no_settings,
};
use super::pod::{self, Presets, Res, Workload, WorkloadKind};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, blaze, database, flare};

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
    needs: &[
        Need {
            purpose: "the FHIR server",
            one_of: &[blaze::PROVIDER],
        },
        Need {
            purpose: "the FLARE feasibility executor",
            one_of: &[flare::PROVIDER],
        },
    ],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[],
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

const PRESETS: Presets = Presets {
    small: Res {
        cpu: "500m",
        memory: "1Gi",
        cpu_limit: "2",
    },
    medium: Res {
        cpu: "1",
        memory: "2Gi",
        cpu_limit: "4",
    },
    large: Res {
        cpu: "2",
        memory: "4Gi",
        cpu_limit: "8",
    },
};

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
    w.set("TORCH_RESULTS_DIR", OUTPUT_PATH);
    w.set(
        "TORCH_FHIR_URL",
        format!(
            "{}{}",
            ctx.url("blaze", HTTP_8080.port),
            super::blaze::CONTEXT_PATH
        ),
    );
    w.set("TORCH_FLARE_URL", ctx.url("flare", HTTP_8080.port));
    if let Some(oidc) = ctx.oidc() {
        w.set("TORCH_FHIR_OAUTH_ISSUER_URI", oidc.issuer_url.clone());
        w.set("TORCH_FHIR_OAUTH_CLIENT_ID", oidc.client_id.clone());
        if let Some(secret) = &oidc.client_secret_ref {
            w.env.push(database::secret_env(
                "TORCH_FHIR_OAUTH_CLIENT_SECRET",
                &secret.name,
                &secret.key,
            ));
        }
    }
    // No health endpoint is documented for TORCH: TCP on its API port.
    w.startup = Some(pod::startup(pod::tcp_probe("http"), 300));
    w.readiness = Some(pod::tcp_probe("http"));
    w.liveness = Some(pod::tcp_probe("http"));
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}
