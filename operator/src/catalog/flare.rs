//! FLARE: evaluates feasibility queries against the FHIR server.
//!
//! Not exposed through the ingress: queries arrive through the site's DSF, inside the cluster.
//! FLARE itself authenticates nobody (`/query/execute`, `/cache/stats` are open), so its
//! NetworkPolicy is the only gate.
//!
//! Towards Blaze, FLARE logs in as an OAuth client only when the issuer, the client id and the
//! client secret are all set (medizininformatik-initiative/flare@v2.4.0:src/main/java/de/medizininformatikinitiative/flare/FlareApplication.java:115-140).
//! So the operator passes them only together: a site with `spec.auth.oidc` but no
//! `clientSecretRef` gets FLARE without authentication, and Blaze, which then demands a token,
//! answers its queries with 401 until the site names the client secret.
//!
//! The disk cache (`/app/cache`) is an emptyDir without a size limit: upstream bounds it by
//! time only (entries expire after 7 days, README.md:59-62), it counts against the node's
//! ephemeral storage and is lost with the pod, which only costs recomputation.
//!
//! Image facts were read at medizininformatik-initiative/flare `v2.4.0` (the pinned version).

use super::component::{DatabaseNeed, Descriptor, Exposure, Need, no_checks, no_settings};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Write, WriteKind};
use super::pod::{self, Presets, Res, RunAs, Security, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, blaze};

pub static COMPONENT: Descriptor = Descriptor {
    name: "flare",
    field: "flare",
    description: "the FLARE feasibility executor",
    spec: |c| c.flare.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::None,
    replica_limit: None,
    storage: false,
    needs: &[Need {
        purpose: "the FHIR server",
        one_of: &[blaze::PROVIDER],
    }],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[CONTRACT],
    build,
    defined: None,
};

const PARTS: [Part; 1] = [Part {
    name: "flare",
    role: "feasibility",
    image: "flare",
    ports: &[HTTP_8080],
    exposure: Exposure::Never,
    // The site's DSF sends it feasibility queries.
    entry_point: true,
    calls: &[],
    sidecars: &[],
    uses_database: false,
    uses_oidc: true,
}];

const SOURCE: &str = "medizininformatik-initiative/flare@v2.4.0";

/// What the FLARE image demands.
///
/// Not in it: `/tmp` (the JVM's temp directory, where rocksdbjni is expected to unpack its
/// native library: library behaviour, not read in the source; writable here all the same), the
/// truststore the entrypoint regenerates only when CA files are mounted at `/app/certs`
/// (docker-entrypoint.sh:11-31; the catalogue mounts none), and `FLARE_FHIR_SERVER`, which has a
/// default (`http://localhost:8082/fhir`, application.yml:5) so FLARE starts without it.
const CONTRACT: ImageContract = ImageContract {
    image: "flare",
    repository: "ghcr.io/medizininformatik-initiative/flare",
    source: SOURCE,
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "1001",
        uid: Some(1001),
        gid: None,
        cite: "medizininformatik-initiative/flare@v2.4.0:Dockerfile:23",
    },
    writes: &[Write {
        path: "/app/cache",
        kind: WriteKind::Dir,
        why: "the RocksDB disk cache, opened (created if missing) at start; a failure aborts the start",
        cite: "medizininformatik-initiative/flare@v2.4.0:src/main/java/de/medizininformatikinitiative/flare/service/DiskCachingFhirQueryService.java:44-54",
    }],
    required: &[],
    ports: &[8080],
    endpoints: &[Endpoint {
        path: "/cache/stats",
        port: 8080,
        needs: None,
        cite: "medizininformatik-initiative/flare@v2.4.0:src/main/java/de/medizininformatikinitiative/flare/rest/CacheController.java:32-35",
    }],
    jvm: Some(Jvm {
        default_heap_mib: Some(4096),
        options_env: "JAVA_TOOL_OPTIONS",
        cite: "medizininformatik-initiative/flare@v2.4.0:Dockerfile:13",
    }),
};

/// The image's own user, which owns `/app/cache` and the truststore directory
/// (Dockerfile:8,20,23).
const UID: i64 = 1001;
const CACHE_DIR: &str = "/app/cache";

/// Upstream sizes FLARE at 8 GiB: a 4 GiB heap holding a 1 GiB in-memory cache, about 1 GiB
/// off-heap for the disk cache and the rest page cache (README.md:51-58). The presets keep those
/// proportions: heap half the limit ([`HEAP_PERCENT`]), in-memory cache an eighth
/// ([`cache_mem_mib`]).
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
        cpu_limit: "4",
    },
};

const HEAP_PERCENT: &str = "50.0";

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    w.security = Security {
        run_as: RunAs::User(UID),
        read_only_root: true,
    };
    w.writable_dirs = &["/tmp", CACHE_DIR];
    w.set(
        "FLARE_FHIR_SERVER",
        format!(
            "{}{}",
            ctx.url("blaze", HTTP_8080.port),
            super::blaze::CONTEXT_PATH
        ),
    );
    // The image's default, pinned so that env cannot move the cache off its volume.
    w.set("FLARE_CACHE_DISK_PATH", CACHE_DIR);
    // The image sets `-Xmx4g` in JAVA_TOOL_OPTIONS (Dockerfile:13), more than the small and
    // medium limits; replacing the variable replaces it.
    w.set(
        "JAVA_TOOL_OPTIONS",
        format!("-XX:MaxRAMPercentage={HEAP_PERCENT}"),
    );
    // Default 1024 MiB (application.yml:13), a quarter of upstream's heap.
    w.set(
        "FLARE_CACHE_MEM_SIZE_MB",
        cache_mem_mib(ctx).unwrap_or(512).to_string(),
    );
    pod::fhir_oauth_client(ctx, &mut w, "FLARE_FHIR_OAUTH");
    // The cache statistics answer as soon as the application context is up (upstream's own
    // health check, .github/integration-test/oauth/docker-compose.yml:106).
    let probe = || pod::http_probe("/cache/stats", "http");
    w.startup = Some(pod::startup(probe(), 300));
    w.readiness = Some(probe());
    w.liveness = Some(probe());
    pod::build(ctx, w)
}

/// The in-memory cache: an eighth of the container's memory limit (a quarter of the heap), as
/// in upstream's default sizing; follows `resourceOverrides`.
fn cache_mem_mib(ctx: &Ctx) -> Option<u64> {
    Some((pod::memory_limit_mib(ctx, &PRESETS)? / 8).max(16))
}
