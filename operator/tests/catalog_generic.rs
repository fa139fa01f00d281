//! Components a signed release defines (`spec.componentDefinitions`): built through the same
//! code as the built-in catalogue, so a defined component gets the same pod security, the same
//! NetworkPolicies and the same status as a built-in one; its definition is signed content, so a
//! tampered definition is refused like any tampered release; and a site naming a component its
//! release does not define is stalled with the field named.

mod common;

use common::{Fixture, json, repo_root};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::DynamicObject;
use miracolix_operator::api::{
    ComponentDefinition, ComponentImage, ComponentRelease, ComponentReleaseSpec, DizSiteSpec,
    ReleaseFormat, reasons,
};
use miracolix_operator::catalog::{self, CatalogError, Child, ResolvedRelease};
use miracolix_operator::controller::dizsite::status::{component_statuses, workloads};
use miracolix_operator::release::{Reason, TrustStore, Verdict, verify};
use serde_json::Value;

fn read_release(file: &str) -> ComponentRelease {
    let text = std::fs::read_to_string(repo_root().join("examples").join(file)).expect("example");
    miracolix_operator::yaml::from_multi_doc(&text)
        .expect("parses")
        .remove(0)
}

fn trust() -> TrustStore {
    TrustStore::from_dir(&repo_root().join("examples/trusted-keys")).expect("demo key")
}

/// A component defined as data that mirrors Blaze where the comparison needs it (same uid and
/// gid, a volume, port 8080) and calls the FHIR server like FLARE does.
fn tool_definition() -> ComponentDefinition {
    let yaml = r#"
name: tool
description: a tool a lead site brings
role: research-tool
ports: [{name: http, port: 8080}]
health: {readinessPath: /health}
settings:
  - {name: TOOL_FHIR_URL, value: "http://fhir"}
storage: {mountPath: /app/data, defaultSize: 8Gi}
resources:
  small: {cpu: 100m, cpuLimit: "1", memory: 256Mi}
  medium: {cpu: 250m, cpuLimit: "1", memory: 512Mi}
  large: {cpu: 500m, cpuLimit: "2", memory: 1Gi}
contract:
  source: example/tool@v1.0.0
  uid: 1001
  gid: 1001
  writablePaths:
    - {path: /app/data, why: its data}
    - {path: /tmp, why: temporary files}
calls: [{component: blaze}]
"#;
    miracolix_operator::yaml::from_multi_doc(yaml)
        .expect("definition parses")
        .remove(0)
}

/// The example release 2026.1 with the tool defined and its image pinned.
fn release_with_tool() -> ComponentReleaseSpec {
    let mut spec = read_release("10-release-miracolix-2026.1.yaml").spec;
    spec.components.insert(
        "tool".into(),
        ComponentImage {
            repository: "registry.example.org/tool".into(),
            digest: format!("sha256:{}", "7".repeat(64)),
            version: "1.0.0".into(),
        },
    );
    spec.component_definitions.push(tool_definition());
    spec
}

/// A site running Blaze, FLARE and the tool.
fn site() -> Fixture {
    let mut f = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  flare: {}\n  fromRelease:\n    - name: tool\n",
    );
    f.release = ResolvedRelease::of("miracolix-2026.1-tool", &release_with_tool());
    f
}

fn workload<'a>(children: &'a [Child], name: &str) -> &'a Child {
    children
        .iter()
        .find(|c| {
            matches!(c.resource.kind.as_str(), "Deployment" | "StatefulSet")
                && c.object.metadata.name.as_deref() == Some(name)
        })
        .unwrap_or_else(|| panic!("no workload {name}"))
}

fn policy(children: &[Child], name: &str) -> Value {
    json(common::find(children, "NetworkPolicy", name))
}

/// The egress rule of a policy towards the pods with `app.kubernetes.io/name: <target>`.
fn egress_to(policy: &Value, target: &str) -> Value {
    policy["spec"]["egress"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r.pointer("/to/0/podSelector/matchLabels/app.kubernetes.io~1name")
                == Some(&Value::from(target))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no egress rule to {target} in {policy:#}"))
}

/// The ingress rule of a policy from the pods of component `<source>`, with the
/// source's name replaced by `<caller>` so that rules for different callers compare.
fn ingress_from(policy: &Value, source: &str) -> Value {
    let rule = policy["spec"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r.pointer("/from/0/podSelector/matchLabels/diz.miracum.org~1component")
                == Some(&Value::from(source))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no ingress rule from {source} in {policy:#}"));
    let text = serde_json::to_string(&rule)
        .expect("rule serialises")
        .replace(&format!("\"{source}\""), "\"<caller>\"");
    serde_json::from_str(&text).expect("rule parses")
}

#[test]
fn a_defined_component_runs_under_the_same_pod_security_as_a_built_in_one() {
    let children = site().build();
    let blaze = json(workload(&children, "test-blaze"));
    let tool = json(workload(&children, "test-tool"));
    let pod = |w: &Value| w["spec"]["template"]["spec"].clone();
    // Both run as uid/gid 1001 by their contracts: the same pod security context, field by field.
    assert_eq!(
        pod(&tool)["securityContext"],
        pod(&blaze)["securityContext"]
    );
    assert_eq!(
        pod(&tool)["containers"][0]["securityContext"],
        pod(&blaze)["containers"][0]["securityContext"]
    );
    for field in ["automountServiceAccountToken", "enableServiceLinks"] {
        assert_eq!(pod(&tool)[field], pod(&blaze)[field], "{field}");
    }
    let security = &pod(&tool)["containers"][0]["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    // Its volume as a claim template, like Blaze's, and its other writable path an emptyDir.
    assert_eq!(
        tool["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "8Gi"
    );
    let tool_pod = pod(&tool);
    let mounts: Vec<&str> = tool_pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert_eq!(mounts, ["/tmp", "/app/data"]);
    // The pinned image, by digest only.
    assert_eq!(
        pod(&tool)["containers"][0]["image"],
        format!("registry.example.org/tool@sha256:{}", "7".repeat(64))
    );
}

#[test]
fn a_defined_component_gets_the_network_policies_a_built_in_caller_gets() {
    let children = site().build();
    // FLARE calls Blaze because its descriptor says so; the tool because its definition does.
    let flare = policy(&children, "test-flare");
    let tool = policy(&children, "test-tool");
    assert_eq!(egress_to(&tool, "blaze"), egress_to(&flare, "blaze"));
    assert_eq!(tool["spec"]["policyTypes"], flare["spec"]["policyTypes"]);
    // Blaze admits both callers with the same rule.
    let blaze = policy(&children, "test-blaze");
    assert_eq!(ingress_from(&blaze, "tool"), ingress_from(&blaze, "flare"));
    // And the site's default deny covers the tool's pods (it selects by the site label).
    let deny = policy(&children, "test-default-deny");
    let labels = &json(workload(&children, "test-tool"))["spec"]["template"]["metadata"]["labels"];
    for (k, v) in deny["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(&labels[k], v, "{k}");
    }
    // Without Blaze the tool cannot run, as FLARE cannot.
    let mut without = site();
    without.spec.components.blaze = None;
    without.spec.components.flare = None;
    let errors = catalog::build(&without.input()).expect_err("the tool needs Blaze");
    assert!(
        errors
            .iter()
            .any(|e| e.reason() == reasons::DEPENDENCY_DISABLED
                && e.to_string()
                    .starts_with("spec.components.fromRelease[name=tool] needs")),
        "{errors:#?}"
    );
}

#[test]
fn a_defined_component_reports_the_same_status_as_a_built_in_one() {
    let f = site();
    let children = f.build();
    // The workloads as the API server reports them once their pods are ready.
    let live: Vec<_> = children
        .iter()
        .filter(|c| matches!(c.resource.kind.as_str(), "Deployment" | "StatefulSet"))
        .map(|c| {
            let mut obj: DynamicObject = c.object.clone();
            obj.metadata = ObjectMeta {
                generation: Some(1),
                ..obj.metadata
            };
            let replicas = obj.data["spec"]["replicas"].clone();
            obj.data["status"] = serde_json::json!({
                "observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
                "availableReplicas": replicas, "updatedReplicas": replicas,
            });
            (c.resource.clone(), obj)
        })
        .collect();
    let statuses = component_statuses(&f.spec, &workloads(&live));
    let of = |name: &str| {
        statuses
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no status of {name}: {statuses:#?}"))
    };
    let (blaze, tool) = (of("blaze"), of("tool"));
    assert!(tool.enabled && blaze.enabled);
    assert_eq!((tool.replicas, tool.ready_replicas), (1, 1));
    assert_eq!(
        (tool.replicas, tool.ready_replicas),
        (blaze.replicas, blaze.ready_replicas)
    );
    assert_eq!(
        tool.image.as_deref(),
        Some(format!("registry.example.org/tool@sha256:{}", "7".repeat(64)).as_str())
    );
    assert!(
        blaze
            .image
            .as_deref()
            .is_some_and(|i| i.contains("@sha256:"))
    );
    // Listed after the catalogue, in the order the site lists them.
    assert_eq!(statuses.last().map(|s| s.name.as_str()), Some("tool"));
}

#[test]
fn a_component_the_release_does_not_define_stalls_the_site_with_the_field_named() {
    let mut f = Fixture::spec_yaml("components:\n  fromRelease:\n    - name: pacs\n");
    f.release = ResolvedRelease::of("miracolix-2026.1-tool", &release_with_tool());
    let errors = catalog::build(&f.input()).expect_err("pacs is not defined");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].reason(), reasons::COMPONENT_NOT_IN_RELEASE);
    assert_eq!(
        errors[0].to_string(),
        "spec.components.fromRelease[name=pacs]: release miracolix-2026.1-tool defines no component pacs; it defines tool: choose one of those, a release that defines it, or remove the entry"
    );
    // The release the example sites run defines nothing.
    let mut plain = Fixture::spec_yaml("components:\n  fromRelease:\n    - name: tool\n");
    plain.release = common::release();
    let errors = catalog::build(&plain.input()).expect_err("2026.1 defines no tool");
    assert!(matches!(
        &errors[0],
        CatalogError::ComponentNotInRelease { name, defined, .. } if name == "tool" && defined.is_empty()
    ));
}

#[test]
fn a_definition_that_cannot_be_used_stalls_the_site_that_enables_it() {
    let mut spec = release_with_tool();
    // Admitted before the CEL rule existed, or rendered without an API server: a call to a
    // component the catalogue does not have.
    spec.component_definitions[0].calls[0].component = "pacs".into();
    let mut f = Fixture::spec_yaml("components:\n  blaze: {}\n  fromRelease:\n    - name: tool\n");
    f.release = ResolvedRelease::of("broken", &spec);
    let errors = catalog::build(&f.input()).expect_err("the definition is unusable");
    assert_eq!(errors[0].reason(), reasons::DEFINITION_UNUSABLE);
    assert!(errors[0].to_string().contains("\"pacs\""), "{}", errors[0]);
}

#[test]
fn the_image_must_get_the_settings_its_contract_requires() {
    let mut spec = release_with_tool();
    spec.component_definitions[0].contract.required_settings = vec![
        serde_json::from_value(serde_json::json!({"name": "TOOL_TOKEN", "secret": true}))
            .expect("required setting"),
    ];
    let mut f = site();
    f.release = ResolvedRelease::of("needs-token", &spec);
    let errors = catalog::build(&f.input()).expect_err("TOOL_TOKEN is not set");
    assert_eq!(errors[0].reason(), reasons::UNSUPPORTED_COMBINATION);
    assert!(
        errors[0].to_string().contains("TOOL_TOKEN"),
        "{}",
        errors[0]
    );
    // A plain value is not enough for a credential; a Secret key is.
    let with_env = |env: &str| {
        let mut f = site();
        f.release = ResolvedRelease::of("needs-token", &spec);
        let spec: DizSiteSpec = miracolix_operator::yaml::from_multi_doc(&format!(
            "siteId: test\nrelease: {{name: x}}\ncomponents:\n  blaze: {{}}\n  flare: {{}}\n  fromRelease:\n    - name: tool\n      env: [{env}]\n"
        ))
        .expect("spec")
        .remove(0);
        f.spec = spec;
        catalog::build(&f.input())
    };
    assert!(with_env("{name: TOOL_TOKEN, value: x}").is_err());
    assert!(with_env("{name: TOOL_TOKEN, secretKeyRef: {name: tool, key: token}}").is_ok());
}

/// A change to a definition.
type Tamper = Box<dyn Fn(&mut ComponentDefinition)>;

/// The example release that defines XNAT is certified; every change to its definition makes the
/// signature fail, exactly as a changed digest does.
#[test]
fn a_tampered_definition_is_refused_like_any_tampered_release() {
    let release = read_release("11-release-miracolix-imaging-2026.1.yaml");
    assert!(
        matches!(verify(&release.spec, &trust()), Verdict::Certified { .. }),
        "{:?}",
        verify(&release.spec, &trust())
    );
    let tamperings: Vec<(&str, Tamper)> = vec![
        ("run as another uid", Box::new(|d| d.contract.uid = 0)),
        (
            "drop a writable path",
            Box::new(|d| {
                d.contract.writable_paths.pop();
            }),
        ),
        (
            "publish without the proxy path",
            Box::new(|d| d.exposure = None),
        ),
        (
            "open a network edge",
            Box::new(|d| {
                d.calls.push(
                    serde_json::from_value(serde_json::json!({"component": "blaze"}))
                        .expect("call"),
                );
            }),
        ),
        (
            "change a setting",
            Box::new(|d| d.settings[0].value = Some("org.evil.Driver".into())),
        ),
        (
            "grow the storage",
            Box::new(|d| {
                if let Some(s) = d.storage.as_mut() {
                    s.mount_path = "/".into();
                }
            }),
        ),
        (
            "change a probe",
            Box::new(|d| d.health.readiness_path = "/".into()),
        ),
    ];
    for (what, tamper) in tamperings {
        let mut spec = release.spec.clone();
        tamper(&mut spec.component_definitions[0]);
        match verify(&spec, &trust()) {
            Verdict::NotCertified { reason, .. } => {
                assert_eq!(reason, Reason::BadSignature, "{what}");
                assert_eq!(reason.as_str(), reasons::BAD_SIGNATURE, "{what}");
            }
            v => panic!("{what}: a tampered definition is certified: {v:?}"),
        }
    }
    // Dropping the definition (its image stays) changes the signed content too.
    let mut dropped = release.spec.clone();
    dropped.component_definitions.clear();
    assert!(matches!(
        verify(&dropped, &trust()),
        Verdict::NotCertified {
            reason: Reason::BadSignature,
            ..
        }
    ));
    // A v1 signature covers no definitions, so it never certifies a release that has them.
    let mut v1 = release.spec.clone();
    if let Some(s) = v1.signature.as_mut() {
        s.format = Some(ReleaseFormat::V1);
    }
    assert!(matches!(
        verify(&v1, &trust()),
        Verdict::NotCertified {
            reason: Reason::NotCanonical,
            ..
        }
    ));
}

/// The example site that enables XNAT renders with its database, its volume and its login proxy.
#[test]
fn the_xnat_example_renders_with_its_database_volume_and_login_proxy() {
    let release = read_release("11-release-miracolix-imaging-2026.1.yaml");
    let site = common::example_site("23-site-magdeburg.yaml");
    let mut f = Fixture::from_site(&site);
    f.release = ResolvedRelease::of("miracolix-imaging-2026.1", &release.spec);
    let children = f.build();
    let xnat = json(workload(&children, "magdeburg-xnat"));
    assert_eq!(xnat["kind"], "StatefulSet");
    let pod = &xnat["spec"]["template"]["spec"];
    let names: Vec<&str> = pod["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["xnat", "login-proxy"]);
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(
        xnat["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "500Gi"
    );
    common::find(&children, "Cluster", "magdeburg-xnat-db");
    let ingress = json(common::find(&children, "Ingress", "magdeburg"));
    assert!(
        serde_json::to_string(&ingress)
            .expect("json")
            .contains("\"/xnat\""),
        "{ingress:#}"
    );
}
