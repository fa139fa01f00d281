//! Blaze, the site's FHIR server: one StatefulSet with its data on a volume.

use super::component::{
    Access, DatabaseNeed, Descriptor, Exposure, Provider, ReplicaLimit, no_checks, no_settings,
};
use super::pod::{self, ClaimTemplate, Presets, Res, RunAs, Security, Workload, WorkloadKind};
use super::{CatalogError, Child, Ctx, HTTP_8080, METRICS_8081, Part};

pub static COMPONENT: Descriptor = Descriptor {
    name: "blaze",
    field: "blaze",
    description: "the FHIR server",
    spec: |c| c.blaze.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::None,
    replica_limit: Some(ReplicaLimit {
        max: 1,
        why: "its data lives on one ReadWriteOnce volume",
    }),
    storage: true,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[],
    build,
};

/// How the components that read or write FHIR reach Blaze.
pub(crate) const PROVIDER: Provider = Provider {
    component: &COMPONENT,
    access: Access::Service {
        part: "blaze",
        ports: &[8080],
    },
};

const PARTS: [Part; 1] = [Part {
    name: "blaze",
    role: "fhir-server",
    image: "blaze",
    ports: &[HTTP_8080, METRICS_8081],
    // Without a provider Blaze answers every request, and it holds the complete clinical
    // record: published only with OIDC.
    exposure: Exposure::WithOidc("/fhir"),
    // The hospital's ETL may load straight into Blaze.
    entry_point: true,
    calls: &[],
    uses_database: false,
    uses_oidc: true,
}];

/// Blaze keeps its RocksDB block and resource caches off-heap, so memory buys speed directly.
const PRESETS: Presets = Presets {
    small: Res {
        cpu: "500m",
        memory: "2Gi",
        cpu_limit: "2",
    },
    medium: Res {
        cpu: "1",
        memory: "4Gi",
        cpu_limit: "4",
    },
    large: Res {
        cpu: "2",
        memory: "8Gi",
        cpu_limit: "8",
    },
};

/// The uid the Blaze image is built for; its data directory is owned by it.
pub const BLAZE_UID: i64 = 1001;
pub const DATA_PATH: &str = "/app/data";
pub const CONTEXT_PATH: &str = "/fhir";

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let part = &PARTS[0];
    let mut w = Workload::deployment(part, &PRESETS);
    // A StatefulSet rather than a Deployment with a PVC: the claim template gives the pod a
    // stable volume identity, and Blaze's standalone storage can never run twice on one volume.
    w.kind = WorkloadKind::StatefulSet {
        claim: ClaimTemplate {
            name: "data",
            mount_path: DATA_PATH,
            default_size: "8Gi",
        },
    };
    w.security = Security {
        run_as: RunAs::User(BLAZE_UID),
        read_only_root: true,
    };
    // Links in search bundles use BASE_URL: the public host when the server is reachable from
    // outside, the Service otherwise.
    let base = if super::ingress::is_exposed(ctx.site, part) {
        ctx.public_base()
    } else {
        None
    };
    w.set(
        "BASE_URL",
        base.unwrap_or_else(|| ctx.url(part.name, HTTP_8080.port)),
    );
    w.set("CONTEXT_PATH", CONTEXT_PATH);
    w.set("STORAGE", "standalone");
    if let Some(oidc) = ctx.oidc() {
        // With a provider set, Blaze requires a valid bearer token on every FHIR request.
        w.set("OPENID_PROVIDER_URL", oidc.issuer_url.clone());
    }
    // The first start after an upgrade may re-index for a long time (release 2026.1 notes:
    // up to 30 minutes); only then do readiness and liveness take over.
    w.startup = Some(pod::startup(pod::http_probe("/health", "http"), 1800));
    w.readiness = Some(pod::http_probe("/health", "http"));
    w.liveness = Some(pod::http_probe("/health", "http"));
    pod::build(ctx, w)
}
