//! Blaze, the site's FHIR server: one StatefulSet with its data on a volume.
//!
//! `BASE_URL` is always the in-cluster Service: FLARE, TORCH and the gateway follow the paging
//! links Blaze builds from it, and must not be sent out through the ingress. Clients that come
//! through the ingress still get public links, because Blaze rebuilds the base of every link
//! from `X-Forwarded-Host`/`X-Forwarded-Proto` (or `Forwarded`) when a request carries them
//! (samply/blaze@v0.30.2:docs/deployment/environment-variables.md:122-124;
//! modules/rest-api/src/blaze/rest_api/middleware/forwarded.clj:15-27). ingress-nginx sends both
//! headers on every proxied request; a site behind another ingress controller must make it send
//! them, or external clients get in-cluster links.
//!
//! With `spec.auth.oidc`, Blaze requires a bearer token on every FHIR request. It checks the
//! token's signature against the realm's key only, not its issuer or audience
//! (modules/openid-auth/src/blaze/openid_auth/impl.clj:44-46): any token of the realm grants
//! full read and write access, so a dedicated realm (or one whose tokens are only issued to
//! Blaze's users) is advisable. An issuer with a private CA needs
//! `OPENID_CLIENT_TRUST_STORE`/`_PASS`, which the DizSite does not model yet; sites set them
//! through `spec.components.blaze.env` with a mounted trust store.

use super::component::{
    Access, DatabaseNeed, Descriptor, Exposure, Provider, ReplicaLimit, no_checks, no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Jvm, Write, WriteKind};
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
    contracts: &[CONTRACT],
    build,
    defined: None,
};

/// What the image demands of its pod, read at the pinned tag. Not in the contract, because
/// unverified: what Blaze writes to `/tmp` (rocksdbjni extracting its native library is the
/// likely user; the fact used here is only that Blaze's own CI gives the read-only container a
/// `/tmp`), and the base image's `/__cacert_entrypoint.sh`, which writes to `/tmp` only with
/// `USE_SYSTEM_CA_CERTS` set (read at a later eclipse-temurin commit than the pinned one).
const CONTRACT: ImageContract = ImageContract {
    image: "blaze",
    repository: "ghcr.io/samply/blaze",
    source: "samply/blaze@v0.30.2",
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "1001",
        uid: Some(BLAZE_UID),
        // `USER 1001` names no group; the data directory is chowned 1001:1001.
        gid: Some(1001),
        cite: "samply/blaze@v0.30.2:Dockerfile:9,13",
    },
    writes: &[
        Write {
            path: DATA_PATH,
            kind: WriteKind::Dir,
            why: "the RocksDB stores (index, transaction, resource, admin-index, admin-transaction), created by Blaze on the first start",
            cite: "samply/blaze@v0.30.2:Dockerfile:16-21",
        },
        Write {
            path: "/tmp",
            kind: WriteKind::Dir,
            why: "the only other writable path Blaze's own CI gives its read-only container (--tmpfs /tmp:exec)",
            cite: "samply/blaze@v0.30.2:.github/workflows/build.yml:578,1119",
        },
    ],
    // "There is a default for every variable" (docs/deployment/environment-variables.md:19).
    required: &[],
    // SERVER_PORT and METRICS_SERVER_PORT defaults (src/blaze/system.clj:133,147-149).
    ports: &[8080, 8081],
    endpoints: &[Endpoint {
        path: "/health",
        port: 8080,
        // Routed before the REST API, so never behind OpenID auth.
        needs: None,
        cite: "samply/blaze@v0.30.2:src/blaze/handler/app.clj:16-29",
    }],
    jvm: Some(Jvm {
        // `java -jar` without a heap flag: the JVM takes its default share of the limit.
        default_heap_mib: None,
        options_env: "JAVA_TOOL_OPTIONS",
        cite: "samply/blaze@v0.30.2:Dockerfile:23; docs/deployment/environment-variables.md:103",
    }),
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
    sidecars: &[],
    uses_database: false,
    uses_oidc: true,
}];

/// Blaze uses three memory regions: the JVM heap (which also holds the resource cache), the
/// RocksDB block cache (off-heap) and the OS page cache (samply/blaze@v0.30.2:
/// docs/tuning-guide.md:45). The guide gives half of the memory to the page cache and splits
/// the rest between heap and block cache (tuning-guide.md:47), so each gets a quarter of the
/// limit: 2Gi → 512 MiB heap and block cache; 8Gi → 2 GiB each, the guide's smallest system
/// (tuning-guide.md:9).
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

/// Heap share of the memory limit (see [`PRESETS`]).
const HEAP_PERCENT: u64 = 25;

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
    // The Service, always (module comment): links for ingress clients come from the forwarded
    // headers; the MIRACUM chart does the same (charts blaze-0.5.10 values.yaml:12).
    w.set("BASE_URL", ctx.url(part.name, HTTP_8080.port));
    w.set("CONTEXT_PATH", CONTEXT_PATH);
    w.set("STORAGE", "standalone");
    // The image sets no heap flag; Blaze documents its heap through JAVA_TOOL_OPTIONS
    // (environment-variables.md:103; tuning-guide.md:22). A share of the limit rather than a
    // fixed -Xmx, so resourceOverrides move the heap with the limit.
    w.set(
        "JAVA_TOOL_OPTIONS",
        format!("-XX:MaxRAMPercentage={HEAP_PERCENT}"),
    );
    if let Some(limit) = pod::memory_limit_mib(ctx, &PRESETS) {
        // The off-heap block cache, in MiB (default 128: environment-variables.md:44): the
        // same quarter of the limit as the heap.
        w.set("DB_BLOCK_CACHE_SIZE", (limit / 4).to_string());
        // The resource cache lives on the heap; the guide's 0.5 M resources go with a 2 GiB
        // heap (tuning-guide.md:9,24). Smaller heaps keep the default of 100 000
        // (environment-variables.md:45).
        let heap = limit * HEAP_PERCENT / 100;
        if heap >= 2048 {
            w.set(
                "DB_RESOURCE_CACHE_SIZE",
                (heap * 500_000 / 2048).to_string(),
            );
        }
    }
    if let Some(oidc) = ctx.oidc() {
        // With a provider set, Blaze requires a valid bearer token on every FHIR request
        // (resources/blaze.edn:1285-1296; rest_api/routes.clj:345-346).
        w.set("OPENID_PROVIDER_URL", oidc.issuer_url.clone());
    }
    // `/health` answers as soon as the HTTP server is up, also while Blaze rebuilds an index
    // (it then answers reads with 503: docs/database/migration.md "Index Store Migration at
    // Start"), so the startup probe only has to cover opening the stores on the volume. The
    // MIRACUM chart allows about two minutes (charts blaze-0.5.10 values.yaml:229-260); ten
    // minutes leave room for a large volume on slow storage.
    w.startup = Some(pod::startup(pod::http_probe("/health", "http"), 600));
    w.readiness = Some(pod::http_probe("/health", "http"));
    w.liveness = Some(pod::http_probe("/health", "http"));
    pod::build(ctx, w)
}
