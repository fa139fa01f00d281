//! fhir-pseudonymizer: de-identifies FHIR resources, taking pseudonyms from VFPS or gPAS.
//!
//! Never exposed through the ingress: it is only ever called by the FHIR gateway inside the
//! site.
//!
//! **The anonymization rules are the operator's, not the image's.** The image's built-in
//! `/etc/anonymization.yaml` has no `pseudonymize` rule at all (VFPS or gPAS would never be
//! called) and carries publicly known keys for `encrypt` and `cryptoHash`
//! (miracum/fhir-pseudonymizer@v2.22.10:src/FhirPseudonymizer/anonymization.yaml:3-17). The
//! operator renders its own config into a ConfigMap file and points
//! `AnonymizationEngineConfigPath` at it:
//! - medical record numbers (identifier type `MR`) are pseudonymised through the backend, in the
//!   VFPS namespace / gPAS domain the site names (`pseudonymization.namespace`);
//! - visit numbers (type `VN`) are encrypted, names redacted, resource ids and the ids inside
//!   references HMAC-hashed (the same coverage as the built-in rules, references added so that
//!   links between resources survive the hashing), all with the site's own keys;
//! - the keys are left empty in the file, because the image only takes
//!   `Anonymization__CryptoHashKey` / `Anonymization__EncryptKey` from the environment when the
//!   file's are empty (AnonymizerConfigurationManager.cs:25-36); they come from the Secret the
//!   site names (`keysSecretRef`), never from the file, a ConfigMap or `render` output. Without
//!   them the image would hash with a random key per process, so pseudonyms would change on
//!   every restart (AnonymizerConfiguration.cs:11-13,45-48): hence required.
//!
//! A site that needs other rules sets `AnonymizationEngineConfigInline` through
//! `spec.components.fhirPseudonymizer.env`; upstream gives the inline config precedence over the
//! path (README.md:93).
//!
//! Which backend: VFPS when the site runs it (the operator then has VFPS create the namespace at
//! start, see `vfps.rs`), else gPAS, whose domain must already exist in gPAS.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::api::LocalObjectRef;

use super::component::{Access, DatabaseNeed, Descriptor, Exposure, Need, Provider, no_checks};
use super::contract::{Endpoint, ImageContract, ImageUser, Write, WriteKind};
use super::database::secret_env;
use super::pod::{self, LIGHT_SERVICE, Presets, Workload};
use super::{CatalogError, Child, Ctx, HTTP_8080, METRICS_8081, Part, gpas, vfps};

pub static COMPONENT: Descriptor = Descriptor {
    name: "fhir-pseudonymizer",
    field: "fhirPseudonymizer",
    description: "the FHIR pseudonymizer",
    spec: |c| c.fhir_pseudonymizer.as_ref().map(|p| &p.common),
    minimal: "{keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}",
    settings: |c| {
        c.fhir_pseudonymizer
            .as_ref()
            .map(|p| &p.settings as &dyn std::any::Any)
    },
    parts: &PARTS,
    database: DatabaseNeed::None,
    replica_limit: None,
    storage: false,
    needs: &[Need {
        purpose: "a pseudonym service",
        // VFPS is preferred: it is the faster service and runs on the site's own PostgreSQL.
        one_of: &[
            Provider {
                component: &vfps::COMPONENT,
                access: Access::Service {
                    part: "vfps",
                    ports: &[8080, 8081],
                },
            },
            Provider {
                component: &gpas::COMPONENT,
                access: Access::Service {
                    part: "gpas",
                    ports: &[8080],
                },
            },
        ],
    }],
    checks: no_checks,
    security_exceptions: &[],
    contracts: &[CONTRACT],
    build,
    defined: None,
};

/// The pseudonymizer's own settings under `spec.components.fhirPseudonymizer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// A Secret in the site's namespace holding the de-identification keys: `crypto-hash-key`
    /// (the HMAC-SHA256 key resource ids are hashed with) and `encrypt-key` (the AES key visit
    /// numbers are encrypted with: exactly 16, 24 or 32 bytes). Create them once from a random
    /// source and keep them: new keys give every resource new ids.
    pub keys_secret_ref: LocalObjectRef,
    /// Where patient identifiers get their pseudonyms.
    pub pseudonymization: Pseudonymization,
}

/// The pseudonym backend's bucket for patient identifiers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pseudonymization {
    /// The VFPS namespace (with VFPS) or gPAS domain (with gPAS) that medical record numbers are
    /// pseudonymised in, e.g. `patient-identifiers`. With VFPS the operator has VFPS create it;
    /// a gPAS domain must already exist in gPAS. Changing it starts new pseudonyms for every
    /// patient.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*$')").message("namespace must start with a letter or digit and contain only letters, digits, '.', '_' and '-' (e.g. patient-identifiers)"))]
    #[schemars(length(min = 1, max = 128))]
    pub namespace: String,
}

/// Keys in the Secret named by [`Settings::keys_secret_ref`].
pub const CRYPTO_HASH_KEY: &str = "crypto-hash-key";
pub const ENCRYPT_KEY: &str = "encrypt-key";

/// Where the operator's anonymization config is mounted (a directory of its own, like the
/// upstream chart's `/etc/fhir-pseudonymizer`, charts fhir-pseudonymizer-0.7.87
/// templates/deployment.yaml:68-71,113-116).
pub const CONFIG_PATH: &str = "/etc/fhir-pseudonymizer/anonymization.yaml";

const SOURCE: &str = "miracum/fhir-pseudonymizer@v2.22.10";

/// What the image demands of its pod, read at the pinned tag.
///
/// No `required` entries: the settings without which the service cannot work depend on the
/// backend (`gPAS__Url` when `PseudonymizationService=gPAS`, "gPAS is enabled but the backend
/// service URL is unset.", GPasExtensions.cs:19-22; `Vfps__Address` when `Vfps`,
/// VfpsExtensions.cs:17-22), and a contract requirement is unconditional. The builder sets the
/// one its backend needs (tests in this module). `AnonymizationEngineConfigPath` has a default
/// baked into the image (appsettings.json:12; Dockerfile:72), so it is not required either.
const CONTRACT: ImageContract = ImageContract {
    image: "fhir-pseudonymizer",
    repository: "ghcr.io/miracum/fhir-pseudonymizer",
    source: SOURCE,
    program: None,
    reads: &[],
    user: ImageUser {
        // `USER 65532:65532`: numeric, so the kubelet can check it against runAsNonRoot.
        declared: "65532",
        uid: Some(65532),
        gid: Some(65532),
        cite: "miracum/fhir-pseudonymizer@v2.22.10:Dockerfile:6",
    },
    writes: &[Write {
        path: "/tmp",
        kind: WriteKind::Dir,
        why: "the .NET runtime's diagnostics IPC socket; the upstream chart instead runs read-only with DOTNET_EnableDiagnostics=0 and no writable mount",
        cite: "miracum/charts@fhir-pseudonymizer-0.7.87:charts/fhir-pseudonymizer/templates/deployment.yaml:43-44,112-119",
    }],
    required: &[],
    // 8080 from ASPNETCORE_URLS (Dockerfile:5,9); 8081 the metrics server (Startup.cs:31-34,
    // appsettings.json:29-30).
    ports: &[8080, 8081],
    endpoints: &[
        Endpoint {
            path: "/ready",
            port: 8080,
            needs: None,
            cite: "miracum/fhir-pseudonymizer@v2.22.10:src/FhirPseudonymizer/Startup.cs:102-105,136",
        },
        Endpoint {
            path: "/live",
            port: 8080,
            needs: None,
            cite: "miracum/fhir-pseudonymizer@v2.22.10:src/FhirPseudonymizer/Startup.cs:137-144",
        },
    ],
    jvm: None,
};

const PARTS: [Part; 1] = [Part {
    name: "fhir-pseudonymizer",
    role: "pseudonymizer",
    image: "fhir-pseudonymizer",
    ports: &[HTTP_8080, METRICS_8081],
    // Only ever called by the FHIR gateway inside the site.
    exposure: Exposure::Never,
    entry_point: false,
    calls: &[],
    sidecars: &[],
    uses_database: false,
    uses_oidc: false,
}];

/// .NET sizes its GC heap from the cgroup limit itself; there is no heap setting to derive.
const PRESETS: Presets = LIGHT_SERVICE;

/// The pseudonymizer's settings as another builder sees them (VFPS creates the namespace the
/// rules use): read through the descriptor, like [`Ctx::settings`] does for a component's own.
/// `None` when the pseudonymizer is not enabled.
pub(crate) fn settings_in<'a>(ctx: &Ctx<'a>) -> Option<&'a Settings> {
    ctx.settings_of::<Settings>(&COMPONENT)
}

fn build(ctx: &Ctx) -> Result<Vec<Child>, Vec<CatalogError>> {
    let mut w = Workload::deployment(&PARTS[0], &PRESETS);
    // Setting names as in the upstream README (README.md:93-112); .NET configuration keys are
    // case-insensitive.
    let vfps = ctx.enabled(&vfps::COMPONENT);
    if vfps {
        w.set("PseudonymizationService", "Vfps");
        // The gRPC endpoint of VFPS (VfpsExtensions.cs:17-22).
        w.set("Vfps__Address", ctx.url("vfps", vfps::GRPC.port));
    } else {
        w.set("PseudonymizationService", "gPAS");
        // With the trailing slash upstream documents (README.md:111): the client resolves its
        // relative `$pseudonymize-allow-create` against this base, which drops a last segment
        // without one (GPasFhirClient.cs:230-231).
        w.set(
            "gPAS__Url",
            format!("{}/ttp-fhir/fhir/gpas/", ctx.url("gpas", HTTP_8080.port)),
        );
        // The client picks the gPAS API by this version; the default 1.10.1 selects the old
        // API that newer gPAS no longer serves (appsettings.json:52; GPasFhirClient.cs:48-70).
        // Taken from the release's gPAS image; a release without one is reported by gPAS.
        if let Some(image) = ctx.site.release.images.get("gpas") {
            let Some(version) = version_family(&image.version) else {
                return Err(vec![CatalogError::UnsupportedCombination {
                    component: ctx.component,
                    field: ctx.component.field(),
                    detail: format!(
                        "release {} pins gPAS version '{}', from which the pseudonymizer cannot choose its gPAS API (gPAS__Version needs a version number such as 2024.3.0); use a release that pins gPAS by version, or use VFPS (spec.components.vfps)",
                        ctx.site.release.name, image.version
                    ),
                }]);
            };
            w.set("gPAS__Version", version);
        }
    }
    // As the upstream chart: no diagnostics IPC socket or port in a read-only container
    // (charts fhir-pseudonymizer-0.7.87 templates/deployment.yaml:43-44).
    w.set("DOTNET_EnableDiagnostics", "0");

    if let Some(settings) = ctx.settings::<Settings>() {
        let backend_key = if vfps { "namespace" } else { "domain" };
        w.files.push((
            CONFIG_PATH,
            anonymization_config(backend_key, &settings.pseudonymization.namespace),
        ));
        w.set("AnonymizationEngineConfigPath", CONFIG_PATH);
        // Only from the Secret: the file leaves both keys empty so that these win
        // (AnonymizerConfigurationManager.cs:25-36; README.md:98-99).
        let secret = &settings.keys_secret_ref.name;
        w.env.push(secret_env(
            "Anonymization__CryptoHashKey",
            secret,
            CRYPTO_HASH_KEY,
        ));
        w.env
            .push(secret_env("Anonymization__EncryptKey", secret, ENCRYPT_KEY));
    }
    w.startup = Some(pod::startup(pod::http_probe("/live", "http"), 120));
    w.readiness = Some(pod::http_probe("/ready", "http"));
    w.liveness = Some(pod::http_probe("/live", "http"));
    pod::build(ctx, w)
}

/// `major.minor.patch` of a release version (`2024.3.0`, `2024.3.0-r1` → `2024.3.0`,
/// `2024.3` → `2024.3.0`): the client parses it as a semantic version and only compares it with
/// 1.10.2 (GPasFhirClient.cs:48-70).
fn version_family(version: &str) -> Option<String> {
    let numeric: String = version
        .trim_start_matches('v')
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts: Vec<u64> = Vec::new();
    for p in numeric.split('.').filter(|p| !p.is_empty()).take(3) {
        parts.push(p.parse().ok()?);
    }
    if parts.is_empty() {
        return None;
    }
    parts.resize(3, 0);
    Some(format!("{}.{}.{}", parts[0], parts[1], parts[2]))
}

/// A YAML single-quoted scalar: any text stays one string (the namespace is validated at
/// admission as well).
fn yaml_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''").replace(['\n', '\r'], " "))
}

/// The anonymization config (syntax: README.md:40-57; the anonymizer's `fhirPathRules` and
/// `parameters`). `backend_key` is `namespace` for VFPS or `domain` for gPAS: the rule setting
/// the pseudonymize method reads (PseudonymizationProcessor.cs:44-46).
fn anonymization_config(backend_key: &str, namespace: &str) -> String {
    const TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
    let identifier = |code: &str| {
        format!(
            "nodesByType('Identifier').where(type.coding.where(system='{TYPE}' and code='{code}').exists()).value"
        )
    };
    format!(
        "# Rendered by miracolix-operator. The keys are deliberately empty: they come from the\n\
         # site's Secret through Anonymization__CryptoHashKey and Anonymization__EncryptKey.\n\
         fhirVersion: R4\n\
         fhirPathRules:\n\
         \x20 # Medical record numbers: a pseudonym from the pseudonym service.\n\
         \x20 - path: {mr}\n\
         \x20   method: pseudonymize\n\
         \x20   {backend_key}: {ns}\n\
         \x20 # Visit numbers: encrypted with the site's key.\n\
         \x20 - path: {vn}\n\
         \x20   method: encrypt\n\
         \x20 - path: nodesByType('HumanName')\n\
         \x20   method: redact\n\
         \x20 # Ids and the ids in references hashed alike, so that links still resolve.\n\
         \x20 - path: nodesByType('id')\n\
         \x20   method: cryptoHash\n\
         \x20 - path: nodesByType('Reference').reference\n\
         \x20   method: cryptoHash\n\
         parameters:\n\
         \x20 dateShiftKey: \"\"\n\
         \x20 cryptoHashKey: \"\"\n\
         \x20 encryptKey: \"\"\n",
        mr = identifier("MR"),
        vn = identifier("VN"),
        ns = yaml_quoted(namespace),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpas_version_family() {
        assert_eq!(version_family("2024.3.0").as_deref(), Some("2024.3.0"));
        assert_eq!(version_family("2024.3.0-r1").as_deref(), Some("2024.3.0"));
        assert_eq!(version_family("v2023.1").as_deref(), Some("2023.1.0"));
        assert_eq!(version_family("latest"), None);
    }

    #[test]
    fn the_config_pseudonymizes_in_the_namespace_and_keeps_keys_empty() {
        let yaml = anonymization_config("namespace", "patient-identifiers");
        let doc: serde_json::Value = crate::yaml::from_multi_doc(&yaml)
            .expect("valid YAML")
            .remove(0);
        let rules = doc["fhirPathRules"].as_array().expect("rules");
        let pseudonymize: Vec<_> = rules
            .iter()
            .filter(|r| r["method"] == "pseudonymize")
            .collect();
        assert_eq!(pseudonymize.len(), 1);
        assert_eq!(pseudonymize[0]["namespace"], "patient-identifiers");
        assert!(
            pseudonymize[0]["path"]
                .as_str()
                .is_some_and(|p| p.contains("code='MR'"))
        );
        assert_eq!(doc["parameters"]["cryptoHashKey"], "");
        assert_eq!(doc["parameters"]["encryptKey"], "");
        // A hostile value stays one string.
        let yaml = anonymization_config("domain", "x'\n  method: keep");
        let doc: serde_json::Value = crate::yaml::from_multi_doc(&yaml)
            .expect("valid YAML")
            .remove(0);
        assert_eq!(doc["fhirPathRules"].as_array().map(Vec::len), Some(5));
        assert!(doc["fhirPathRules"][0]["domain"].is_string());
    }
}
