//! VFPS, the very fast pseudonym service, on PostgreSQL.
//!
//! Never exposed through the ingress: pseudonyms are requested only by the pseudonymizer.
//!
//! **Schema migrations** run in the API process at start (`ForceRunDatabaseMigrations=true`,
//! before the server listens: miracum/vfps@v1.3.6:src/Vfps/Program.cs:178-188), with exactly one
//! replica and the `Recreate` strategy, so the old pod is gone before the new version migrates
//! and no two migrators ever run at once. Upstream recommends the flag "only when a single
//! replica of the application is used" (README.md:64), which the replica limit enforces.
//! The alternative, the upstream chart's migration Job (`/opt/vfps/efbundle`) with the API
//! waiting for it, would allow several replicas, but needs a Job per version ordered before the
//! rollout and an init container that watches it through the Kubernetes API (charts vfps-2.1.69
//! migrations-job.yaml, deployment.yaml:61-69), which no pod of the catalogue may use. The price
//! of the flag: no high availability, and a short outage on every rollout (the pseudonymizer
//! retries gRPC `Unavailable`, VfpsExtensions.cs:24-35 of fhir-pseudonymizer, and the gateway
//! retries its 5xx). One residual overlap is not excluded by Kubernetes: a pod deleted *during*
//! its own migration may still be terminating when its replacement starts; EF Core 9 takes a
//! migration lock for that case, which was not verified for the Npgsql provider.
//!
//! **Credentials** are passed as `PGUSER`/`PGPASSWORD` (Npgsql reads both when the connection
//! string has none: npgsql/npgsql@v9.0.2:src/Npgsql/PostgresEnvironment.cs:9-11), as upstream
//! does (charts vfps-2.1.69 templates/deployment.yaml:99-110; vfps compose.yaml:63-69), so a
//! password with `;` or `=` cannot break the connection string.
//!
//! **Namespaces**: when the pseudonymizer uses this VFPS, VFPS creates the namespace its rules
//! pseudonymise in (`Init:v1:Namespaces`, InitNamespacesBackgroundService.cs:17-71); without it
//! every pseudonym request fails with NotFound (PseudonymService.cs:35-45). The setting belongs
//! to the pseudonymizer (`spec.components.fhirPseudonymizer.pseudonymization.namespace`), read
//! through its descriptor. Only one namespace is listed: the start-up service stops at the first
//! namespace that already exists (`return` instead of `continue`, lines 43-50), so a longer list
//! would have to be kept in a stable, append-only order.

use super::component::{
    Database, DatabaseNeed, DbEngine, Descriptor, Exposure, ReplicaLimit, no_checks, no_settings,
};
use super::contract::{Endpoint, ImageContract, ImageUser, Required, Write, WriteKind};
use super::database;
use super::pod::{self, LIGHT_SERVICE, Presets, RunAs, Security, Workload, WorkloadKind};
use super::{CatalogError, Child, Ctx, HTTP_8080, Part, Port, fhir_pseudonymizer};

pub static COMPONENT: Descriptor = Descriptor {
    name: "vfps",
    field: "vfps",
    description: "the VFPS pseudonym service",
    spec: |c| c.vfps.as_ref(),
    minimal: "{}",
    settings: no_settings,
    parts: &PARTS,
    database: DatabaseNeed::Required(Database {
        engine: DbEngine::PostgreSql,
        name: "vfps",
    }),
    replica_limit: Some(ReplicaLimit {
        max: 1,
        why: "it migrates its database schema at start, which two pods must never do at once",
    }),
    storage: false,
    needs: &[],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[CONTRACT],
    build,
    defined: None,
};

pub const GRPC: Port = Port {
    name: "grpc",
    port: 8081,
};
const METRICS: Port = Port {
    name: "metrics",
    port: 8082,
};

/// The image's user; its application files belong to it (Dockerfile:6,90-91).
pub const VFPS_UID: i64 = 65534;

/// What the image demands of its pod, read at the pinned tag.
///
/// `ForceRunDatabaseMigrations` is not listed as required: without it the process starts and
/// stays healthy, only every call fails on the missing tables (Program.cs:178-188, `/livez` and
/// `/readyz` check nothing). The builder sets it (operator/tests/catalog_components.rs).
const CONTRACT: ImageContract = ImageContract {
    image: "vfps",
    repository: "ghcr.io/miracum/vfps",
    source: "miracum/vfps@v1.3.6",
    program: None,
    reads: &[],
    user: ImageUser {
        declared: "65534",
        uid: Some(VFPS_UID),
        gid: Some(65534),
        cite: "miracum/vfps@v1.3.6:Dockerfile:6,90-91",
    },
    writes: &[Write {
        path: "/tmp",
        kind: WriteKind::Dir,
        why: "DOTNET_BUNDLE_EXTRACT_BASE_DIR (single-file extraction) and the .NET diagnostics socket",
        cite: "miracum/vfps@v1.3.6:Dockerfile:11",
    }],
    // With `ForceRunDatabaseMigrations=true` the process migrates before it serves, and exits
    // when it cannot reach the database; the appsettings default is "" (no message of its own).
    required: &[Required {
        name: "ConnectionStrings__PostgreSQL",
        secret: false,
        message: "",
        cite: "miracum/vfps@v1.3.6:src/Vfps/appsettings.json:25-27",
    }],
    // Kestrel endpoints from appsettings (8080 HTTP/1+2, 8081 gRPC) and the metrics port.
    ports: &[8080, 8081, 8082],
    endpoints: &[
        Endpoint {
            path: "/livez",
            port: 8080,
            needs: None,
            cite: "miracum/vfps@v1.3.6:src/Vfps/Program.cs:167",
        },
        Endpoint {
            path: "/readyz",
            port: 8080,
            needs: None,
            cite: "miracum/vfps@v1.3.6:src/Vfps/Program.cs:156-165",
        },
        Endpoint {
            path: "/healthz",
            port: 8080,
            needs: None,
            cite: "miracum/vfps@v1.3.6:src/Vfps/Program.cs:23,155",
        },
    ],
    jvm: None,
};

const PARTS: [Part; 1] = [Part {
    name: "vfps",
    role: "pseudonym-service",
    image: "vfps",
    ports: &[HTTP_8080, GRPC, METRICS],
    // Pseudonyms are requested only by the pseudonymizer.
    exposure: Exposure::Never,
    entry_point: false,
    calls: &[],
    sidecars: &[],
    uses_database: true,
    uses_oidc: false,
}];

const PRESETS: Presets = LIGHT_SERVICE;

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut children = Vec::new();
    if let Some(cluster) = database::cnpg_cluster(ctx).map_err(|e| vec![e])? {
        children.push(cluster);
    }
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    // One pod at a time: the old one stops before the new one migrates (module comment).
    w.kind = WorkloadKind::Deployment { recreate: true };
    w.security = Security {
        run_as: RunAs::User(VFPS_UID),
        read_only_root: true,
    };
    if let Some(db) = ctx.database() {
        // Only the coordinates the connection string is composed of, and the credentials under
        // the names Npgsql reads.
        w.env.push(db.host_var(database::ENV_HOST));
        w.env.push(db.port_var(database::ENV_PORT));
        w.env.push(db.name_var(database::ENV_NAME));
        w.env.push(db.user_var("PGUSER"));
        w.env.push(db.password_var("PGPASSWORD"));
        // Options as upstream (charts vfps-2.1.69 values.yaml:221, _helpers.tpl:168-175).
        w.env_value(
            "ConnectionStrings__PostgreSQL",
            format!(
                "Host=$({});Port=$({});Database=$({});Application Name=vfps;Timeout=60;Max Auto Prepare=5",
                database::ENV_HOST,
                database::ENV_PORT,
                database::ENV_NAME,
            ),
        );
    }
    // Migrate before serving (module comment; Program.cs:178-188, README.md:64).
    w.set("ForceRunDatabaseMigrations", "true");
    // As upstream under a read-only root (charts vfps-2.1.69 deployment.yaml:100-101).
    w.set("DOTNET_EnableDiagnostics", "0");
    if let Some(settings) = fhir_pseudonymizer::settings_in(ctx) {
        // The namespace the pseudonymizer's rules use (module comment). Generation method and
        // length as in upstream's example (charts vfps-2.1.69 values.yaml:246-264); the enum
        // is bound by name (Data/Models/Namespace.cs).
        let ns = "Init__v1__Namespaces__0__";
        w.set(
            &format!("{ns}Name"),
            settings.pseudonymization.namespace.clone(),
        );
        w.set(
            &format!("{ns}Description"),
            "patient identifiers (MR) of the FHIR pseudonymizer; created by miracolix-operator",
        );
        w.set(
            &format!("{ns}PseudonymGenerationMethod"),
            "SecureRandomBase64UrlEncoded",
        );
        w.set(&format!("{ns}PseudonymLength"), "32");
    }
    // Liveness and readiness as upstream (`/livez`, `/readyz`; charts deployment.yaml:86-93);
    // the migration runs before the server listens, within the startup probe's two minutes.
    w.startup = Some(pod::startup(pod::http_probe("/livez", "http"), 120));
    w.readiness = Some(pod::http_probe("/readyz", "http"));
    w.liveness = Some(pod::http_probe("/livez", "http"));
    children.extend(pod::build(ctx, w)?);
    Ok(children)
}
