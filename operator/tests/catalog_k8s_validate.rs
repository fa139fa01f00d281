//! Every built-in object the catalogue renders for the example sites, for sites with every
//! component (with and without OIDC) and for every component alone passes
//! `kubernetes-validate --strict` against Kubernetes 1.33 (unknown fields are errors).
//!
//! Needs the `kubernetes-validate` executable (`scripts/install-tools.sh`); set
//! `SKIP_K8S_VALIDATE=1` to skip on machines without Python.

mod common;

use std::process::Command;

use common::{EXAMPLE_SITES, Fixture};
use miracolix_operator::catalog::database::CNPG_GROUP;

const TOOL: &str = "kubernetes-validate";
const KUBERNETES_VERSION: &str = "1.33.0";

const ALL_COMPONENTS: &str = "components:
  blaze: {}
  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}
  vfps:
    database:
      cloudNativePG: {}
  gpas:
    database:
      external:
        name: ttp
  gics:
    database:
      external:
        name: ttp
  fhirGateway:
    database:
      cloudNativePG: {}
  mainzelliste:
    apiKeySecretRef:
      name: ml-api
      key: api-key
    configSecretRef:
      name: ml-config
      key: mainzelliste.docker.conf
    database:
      external:
        name: ml
  ohdsi:
    database:
      cloudNativePG: {}
  i2b2:
    database:
      external:
        name: i2b2
  flare: {}
  torch: {}
  dqa: {}
ingress:
  host: diz.example.org
  tls:
    issuerRef:
      name: letsencrypt
";

/// Federated login, with every component that works under it (all but the FHIR gateway, which
/// cannot authenticate to an OIDC-protected Blaze).
const OIDC: &str = "auth:
  oidc:
    issuerUrl: https://login.example.org/realms/diz
    clientId: miracolix
    clientSecretRef:
      name: oidc
      key: secret
    cookieSecretRef:
      name: login-proxy
      key: cookie-secret
";
const GATEWAY: &str = "  fhirGateway:
    database:
      cloudNativePG: {}
";

#[test]
fn example_sites_pass_kubernetes_validate_strict() {
    if std::env::var("SKIP_K8S_VALIDATE").is_ok_and(|v| v == "1") {
        eprintln!("SKIP_K8S_VALIDATE=1: skipped kubernetes-validate of the catalogue output");
        return;
    }
    let available = Command::new(TOOL)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        available,
        "`{TOOL}` is not installed: run scripts/install-tools.sh (or set SKIP_K8S_VALIDATE=1 to skip)"
    );

    let dir = std::env::temp_dir().join(format!("miracolix-k8s-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creates temp dir");
    let mut files = Vec::new();
    let mut sites: Vec<(String, Fixture)> = EXAMPLE_SITES
        .iter()
        .map(|f| (f.trim_end_matches(".yaml").to_string(), Fixture::example(f)))
        .collect();
    // No example runs DQA; these run every component with cert-manager, and all but the
    // gateway with OIDC.
    sites.push((
        "all-components".to_string(),
        Fixture::spec_yaml(ALL_COMPONENTS),
    ));
    assert!(ALL_COMPONENTS.contains(GATEWAY));
    sites.push((
        "all-components-oidc".to_string(),
        Fixture::spec_yaml(&format!("{}{OIDC}", ALL_COMPONENTS.replace(GATEWAY, ""))),
    ));
    // And every component alone, with only what it needs (derived from the descriptors).
    for c in miracolix_operator::catalog::Component::all() {
        sites.push((
            format!("alone-{}", c.name()),
            Fixture::spec_yaml(&miracolix_operator::catalog::minimal_components_yaml(c)),
        ));
    }
    for (site, fixture) in &sites {
        for child in fixture.build() {
            // CloudNativePG's Cluster is a CRD the tool has no schema for.
            if child.resource.group == CNPG_GROUP {
                continue;
            }
            let (_, kind, name) = child.key();
            let path = dir.join(format!("{}-{}-{}.yaml", site, kind.to_lowercase(), name));
            let yaml = miracolix_operator::yaml::to_string(&child.object).expect("renders YAML");
            std::fs::write(&path, yaml).expect("writes object");
            files.push(path);
        }
    }
    assert!(!files.is_empty());
    let out = Command::new(TOOL)
        .args([
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            "--quiet",
        ])
        .args(&files)
        .output()
        .expect("runs kubernetes-validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && !stdout.contains("ERROR") && !stderr.contains("ERROR"),
        "kubernetes-validate --strict failed for {} files:\n{stdout}\n{stderr}",
        files.len()
    );
}

/// The objects of the example ProposalInbox (`controller/inbox/build.rs`) pass the same check.
#[test]
fn example_inbox_objects_pass_kubernetes_validate_strict() {
    use miracolix_operator::api::{ComponentRelease, DizSite, DizSiteStatus, ProposalInbox};
    use miracolix_operator::controller::inbox::{self, Observed, Plan};
    if std::env::var("SKIP_K8S_VALIDATE").is_ok_and(|v| v == "1") {
        eprintln!("SKIP_K8S_VALIDATE=1: skipped kubernetes-validate of the inbox's objects");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = |path: &str| {
        let text = std::fs::read_to_string(root.join(path)).expect("example");
        miracolix_operator::yaml::from_multi_doc(&text)
            .expect("yaml")
            .remove(0)
    };
    let inbox: ProposalInbox =
        serde_json::from_value(doc("examples/40-inbox-erlangen.yaml")).expect("inbox");
    let mut site: DizSite =
        serde_json::from_value(doc("examples/20-site-erlangen.yaml")).expect("site");
    let release: ComponentRelease =
        serde_json::from_value(doc("examples/10-release-miracolix-2026.1.yaml")).expect("release");
    site.status = Some(DizSiteStatus {
        current_release: Some("miracolix-2026.1".into()),
        ..DizSiteStatus::default()
    });
    let plan = inbox::plan(
        &inbox,
        &Observed {
            site: Some(site),
            release: Some(release),
            cnpg_available: false,
        },
    );
    let Plan::Deploy(d) = plan else {
        panic!("the example inbox deploys: {plan:?}")
    };
    let dir = std::env::temp_dir().join(format!(
        "miracolix-k8s-validate-inbox-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("creates temp dir");
    let mut files = Vec::new();
    for child in inbox::build::build(&inbox, &d).expect("builds") {
        let (_, kind, name) = child.key();
        let path = dir.join(format!("{}-{name}.yaml", kind.to_lowercase()));
        let yaml = miracolix_operator::yaml::to_string(&child.object).expect("renders YAML");
        std::fs::write(&path, yaml).expect("writes object");
        files.push(path);
    }
    assert_eq!(files.len(), 6);
    let out = Command::new(TOOL)
        .args([
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            "--quiet",
        ])
        .args(&files)
        .output()
        .expect("runs kubernetes-validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && !stdout.contains("ERROR") && !stderr.contains("ERROR"),
        "kubernetes-validate --strict failed:\n{stdout}\n{stderr}"
    );
}
