//! Every pod the catalogue builds meets its images' contracts, as the test API server's kubelet
//! view (`miracolix_e2e::kubelet`) judges it: for each component alone (the smallest site that
//! runs it, derived from the descriptors) and for every example site. And the contracts catch
//! what they are for: a violation is reported with the kubelet's reason.

mod repo;

use std::collections::{BTreeMap, BTreeSet};

use miracolix_e2e::kubelet::{Contracts, Failure, Objects, check_pod};
use miracolix_operator::api::{ComponentRelease, DizSite, DizSiteSpec};
use miracolix_operator::catalog::{
    self, Child, Component, ResolvedRelease, SiteInput, contract, own_image,
};
use serde_json::Value;

fn contracts() -> Contracts {
    repo::catalogue_contracts()
}

fn release() -> ResolvedRelease {
    let doc = repo::docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    let r: ComponentRelease = serde_json::from_value(doc).expect("example release");
    ResolvedRelease::of(&r.metadata.name.clone().expect("name"), &r.spec)
}

fn build(name: &str, namespace: &str, spec: &DizSiteSpec) -> Vec<Child> {
    let release = release();
    let input = SiteInput {
        name,
        namespace,
        uid: "6a1d0c2e-0000-4000-8000-000000000001",
        spec,
        release: &release,
        cnpg_available: true,
    };
    catalog::build(&input).unwrap_or_else(|e| panic!("{name} builds: {e:#?}"))
}

fn json(child: &Child) -> Value {
    serde_json::to_value(&child.object).expect("child serialises")
}

/// The pod spec of a workload child.
fn pod_spec(child: &Child) -> Option<Value> {
    let j = json(child);
    match child.resource.kind.as_str() {
        "Deployment" | "StatefulSet" | "Job" => j.pointer("/spec/template/spec").cloned(),
        "CronJob" => j.pointer("/spec/jobTemplate/spec/template/spec").cloned(),
        _ => None,
    }
}

/// The namespace as the kubelet would find it: the site's ConfigMaps as built, and every Secret
/// the pods reference with the keys they reference (the site creates those; whether they exist
/// is tested separately).
fn objects(children: &[Child]) -> Objects {
    let mut o = Objects::default();
    for c in children {
        let j = json(c);
        let name = c.object.metadata.name.clone().unwrap_or_default();
        if c.resource.kind == "ConfigMap" {
            let data: BTreeMap<String, String> = j
                .get("data")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            o.config_maps.insert(name, data);
        }
        if let Some(pod) = pod_spec(c) {
            collect_secret_refs(&pod, &mut o.secrets);
        }
    }
    o
}

fn collect_secret_refs(v: &Value, out: &mut BTreeMap<String, BTreeSet<String>>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("secretKeyRef") {
                let name = r["name"].as_str().unwrap_or_default().to_string();
                let key = r["key"].as_str().unwrap_or_default().to_string();
                out.entry(name).or_default().insert(key);
            }
            if let Some(name) = m.get("secretName").and_then(Value::as_str) {
                // A Secret volume that lists its `items` names the keys it needs, as a
                // secretKeyRef does: the site's Secret is taken to have them.
                let keys = m
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i["key"].as_str().map(str::to_string));
                out.entry(name.to_string()).or_default().extend(keys);
            }
            if let Some(name) = m
                .get("secretRef")
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
            {
                out.entry(name.to_string()).or_default();
            }
            m.values().for_each(|x| collect_secret_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_secret_refs(x, out)),
        _ => {}
    }
}

/// Every failing container of every pod, as `kind/name container: reason: message`.
fn failures(children: &[Child], objects: &Objects, contracts: &Contracts) -> Vec<String> {
    let mut out = Vec::new();
    for c in children {
        let Some(pod) = pod_spec(c) else { continue };
        let ns = c.object.metadata.namespace.clone().unwrap_or_default();
        for (container, f) in check_pod(&pod, &ns, objects, contracts) {
            out.push(format!(
                "{}/{} {container}: {}: {}",
                c.resource.kind,
                c.object.metadata.name.clone().unwrap_or_default(),
                f.reason(),
                f.message()
            ));
        }
    }
    out
}

fn minimal_spec(c: Component) -> DizSiteSpec {
    let yaml = format!(
        "siteId: test\nrelease:\n  name: miracolix-2026.1\n{}",
        catalog::minimal_components_yaml(c)
    );
    miracolix_operator::yaml::from_multi_doc(&yaml)
        .expect("minimal spec parses")
        .remove(0)
}

/// The smallest site that runs `c` with its parts published behind a login: an ingress and
/// OIDC with every secret the login proxy needs.
fn published_spec(c: Component) -> DizSiteSpec {
    let yaml = format!(
        "siteId: test\nrelease:\n  name: miracolix-2026.1\n{}ingress:\n  host: diz.example.org\n  tls:\n    secretName: diz-tls\nauth:\n  oidc:\n    issuerUrl: https://login.example.org/realms/diz\n    clientId: diz\n    clientSecretRef: {{name: oidc, key: client-secret}}\n    cookieSecretRef: {{name: login-proxy, key: cookie-secret}}\n",
        catalog::minimal_components_yaml(c)
    );
    miracolix_operator::yaml::from_multi_doc(&yaml)
        .expect("published spec parses")
        .remove(0)
}

/// Components with a part that runs the login proxy when published.
fn proxied() -> Vec<Component> {
    Component::all()
        .filter(|c| {
            c.parts()
                .iter()
                .any(|p| matches!(p.exposure, catalog::Exposure::BehindLoginProxy(_)))
        })
        .collect()
}

#[test]
fn every_component_published_behind_the_login_proxy_meets_its_contracts() {
    let contracts = contracts();
    let proxied = proxied();
    assert!(!proxied.is_empty(), "DQA runs behind the login proxy");
    let mut all = Vec::new();
    for c in proxied {
        let children = build("test", "diz-test", &published_spec(c));
        let runs_proxy = children.iter().filter_map(pod_spec).any(|p| {
            p["containers"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|k| k["name"] == "login-proxy"))
        });
        assert!(runs_proxy, "{c}: published, but no login proxy runs");
        all.extend(failures(&children, &objects(&children), &contracts));
    }
    assert!(
        all.is_empty(),
        "pods that would not start:\n{}",
        all.join("\n")
    );
}

#[test]
fn every_component_alone_meets_its_contracts() {
    let contracts = contracts();
    let mut all = Vec::new();
    for c in Component::all() {
        let children = build("test", "diz-test", &minimal_spec(c));
        all.extend(failures(&children, &objects(&children), &contracts));
    }
    assert!(
        all.is_empty(),
        "pods that would not start:\n{}",
        all.join("\n")
    );
}

#[test]
fn every_example_site_meets_its_contracts() {
    let contracts = contracts();
    let mut all = Vec::new();
    for file in [
        "examples/20-site-erlangen.yaml",
        "examples/21-site-dresden.yaml",
        "examples/22-site-marburg.yaml",
    ] {
        let site: DizSite =
            serde_json::from_value(repo::docs(file).remove(0)).expect("example site");
        let name = site.metadata.name.clone().expect("name");
        let ns = site.metadata.namespace.clone().expect("namespace");
        let children = build(&name, &ns, &site.spec);
        all.extend(failures(&children, &objects(&children), &contracts));
    }
    assert!(
        all.is_empty(),
        "pods that would not start:\n{}",
        all.join("\n")
    );
}

#[test]
fn every_contract_belongs_to_a_release_image_and_cites_its_source() {
    let release = release();
    // The project's own image is read from this repository, not cited from upstream: its
    // contracts are checked against the code (`catalog::own_image`'s test) and below
    // (`the_gate_deployment_meets_the_gate_program_contract_and_a_broken_one_does_not`).
    assert_eq!(
        release.images[miracolix_operator::controller::feasibility::build::GATE_IMAGE_KEY]
            .repository,
        own_image::REPOSITORY
    );
    for c in contract::all()
        .into_iter()
        .filter(|c| c.repository != own_image::REPOSITORY)
    {
        assert!(
            release.images.contains_key(c.image),
            "contract for unknown image {}",
            c.image
        );
        assert_eq!(
            release.images[c.image].repository, c.repository,
            "{}: the contract is for another repository than the release pins",
            c.image
        );
        assert!(c.source.contains('@'), "{}: source {:?}", c.image, c.source);
        let cites = std::iter::once(c.user.cite)
            .chain(c.writes.iter().map(|w| w.cite))
            .chain(c.required.iter().map(|r| r.cite))
            .chain(c.endpoints.iter().map(|e| e.cite))
            .chain(c.jvm.iter().map(|j| j.cite));
        for cite in cites {
            assert!(
                cite.contains('@') && cite.contains(':'),
                "{}: every fact cites repository@tag:path, got {cite:?}",
                c.image
            );
        }
    }
}

/// A required secret setting must come from a Secret: never a plain value or a ConfigMap.
#[test]
fn secret_settings_come_from_secrets() {
    let proxied = proxied();
    for c in Component::all() {
        let mut children = build("test", "diz-test", &minimal_spec(c));
        if proxied.contains(&c) {
            children.extend(build("test", "diz-test", &published_spec(c)));
        }
        for child in &children {
            let Some(pod) = pod_spec(child) else { continue };
            for container in pod["containers"].as_array().into_iter().flatten() {
                let image = container["image"].as_str().unwrap_or_default();
                let Some(contract) = contract::all()
                    .into_iter()
                    .find(|k| image.starts_with(&format!("{}@", k.repository)))
                else {
                    continue;
                };
                for r in contract.required.iter().filter(|r| r.secret) {
                    let env = container["env"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|e| e["name"] == r.name);
                    assert!(
                        env.is_some_and(|e| e.pointer("/valueFrom/secretKeyRef").is_some()),
                        "{c}: {} must come from a secretKeyRef",
                        r.name
                    );
                }
            }
        }
    }
}

/// The contracts are not decoration: breaking one is reported as a kubelet would report it.
#[test]
fn a_violated_contract_is_reported_with_the_kubelets_reason() {
    let contracts = contracts();
    // The own image's programs are broken on purpose in the gate's test below.
    for c in contract::all()
        .into_iter()
        .filter(|c| c.repository != own_image::REPOSITORY)
    {
        let owner = Component::all()
            .find(|x| x.descriptor().contracts.iter().any(|k| k.image == c.image))
            .expect("the contract's component");
        // The login proxy runs only where a part is published behind it.
        let runs_on = |spec: &DizSiteSpec| {
            build("test", "diz-test", spec).iter().any(|ch| {
                pod_spec(ch).is_some_and(|p| {
                    p["containers"].as_array().is_some_and(|cs| {
                        cs.iter().any(|k| {
                            k["image"]
                                .as_str()
                                .is_some_and(|i| i.starts_with(&format!("{}@", c.repository)))
                        })
                    })
                })
            })
        };
        let spec = if runs_on(&minimal_spec(owner)) {
            minimal_spec(owner)
        } else {
            published_spec(owner)
        };
        let children = build("test", "diz-test", &spec);
        let objects = objects(&children);
        let Some((child, mut pod)) = children.iter().find_map(|ch| {
            let pod = pod_spec(ch)?;
            let runs = pod["containers"].as_array()?.iter().any(|k| {
                k["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(&format!("{}@", c.repository)))
            });
            runs.then_some((ch, pod))
        }) else {
            panic!("{}: no pod runs it", c.image)
        };
        let idx = pod["containers"]
            .as_array()
            .and_then(|a| {
                a.iter().position(|k| {
                    k["image"]
                        .as_str()
                        .is_some_and(|i| i.starts_with(&format!("{}@", c.repository)))
                })
            })
            .expect("container");
        let ns = child.object.metadata.namespace.clone().unwrap_or_default();
        // A named image user without a numeric runAsUser.
        if c.user.declared.parse::<i64>().is_err() {
            let mut p = pod.clone();
            p["securityContext"]["runAsUser"] = Value::Null;
            p["containers"][idx]["securityContext"]["runAsUser"] = Value::Null;
            p["securityContext"]["runAsNonRoot"] = Value::Bool(true);
            let got = check_pod(&p, &ns, &objects, &contracts);
            assert!(
                got.iter()
                    .any(|(_, f)| matches!(f, Failure::CreateContainerConfigError(_))),
                "{}: {got:?}",
                c.image
            );
        }
        // Each required setting removed.
        for r in c.required {
            let mut p = pod.clone();
            if let Some(env) = p["containers"][idx]["env"].as_array_mut() {
                env.retain(|e| e["name"] != r.name);
            }
            p["containers"][idx]["envFrom"] = Value::Array(Vec::new());
            let got = check_pod(&p, &ns, &objects, &contracts);
            assert!(
                got.iter().any(|(_, f)| f.reason() == "CrashLoopBackOff"),
                "{}: without {} it must not start: {got:?}",
                c.image,
                r.name
            );
        }
        // Each written path on a read-only filesystem.
        if !c.writes.is_empty() {
            pod["containers"][idx]["volumeMounts"] = Value::Array(Vec::new());
            pod["containers"][idx]["securityContext"]["readOnlyRootFilesystem"] = Value::Bool(true);
            let got = check_pod(&pod, &ns, &objects, &contracts);
            assert!(
                got.iter()
                    .any(|(_, f)| f.message().contains("Read-only file system")),
                "{}: {got:?}",
                c.image
            );
        }
    }
}

/// Images of the catalogue without a contract, each with the reason: a gap named here, so it
/// cannot hide. A contract added later makes the entry fail until it is removed.
const WITHOUT_CONTRACT: &[(&str, &str)] = &[(
    "ohdsi-achilles",
    "no upstream source builds ohdsi/achilles:1.7.2: Achilles v1.7.2 ships no Dockerfile, and the \
     settings the catalogue uses are those of OHDSI/Broadsea-Achilles, another image",
)];

#[test]
fn every_image_has_a_contract_or_a_named_reason() {
    let contracted: BTreeSet<&str> = contract::all().iter().map(|c| c.image).collect();
    for c in Component::all() {
        for image in c.images() {
            let exempt = WITHOUT_CONTRACT.iter().any(|(i, _)| *i == image);
            assert!(
                contracted.contains(image) || exempt,
                "{c}: image {image} has no contract; read its upstream source (docs/upstream/) \
                 and add one to the component's descriptor"
            );
            assert!(
                !(contracted.contains(image) && exempt),
                "{image} has a contract now: remove it from WITHOUT_CONTRACT"
            );
        }
    }
}

/// The feasibility gate runs the operator image's `gate` program: the Deployment the controller
/// builds meets that contract, and a gate pod that could not start is not ready in the
/// simulation: without its callers config or token mounted, with args that are no program of
/// the image, or running the image's default program (the operator) instead.
#[test]
fn the_gate_deployment_meets_the_gate_program_contract_and_a_broken_one_does_not() {
    use miracolix_operator::api::{ComponentImage, FeasibilityEndpoint};
    use miracolix_operator::controller::feasibility::build::{self, GateInput, SiteIngress};
    let contracts = contracts();
    let release = repo::docs("examples/10-release-miracolix-2026.1.yaml").remove(0);
    let image: ComponentImage =
        serde_json::from_value(release["spec"]["components"][build::GATE_IMAGE_KEY].clone())
            .expect("the example release pins the gate");
    let check = |direct: bool| {
        let mut doc = repo::docs("examples/30-feasibility-erlangen.yaml").remove(0);
        if direct {
            doc["spec"]["direct"] = serde_json::json!({
                "host": "feasibility.uk-erlangen.de",
                "serverCertificateSecretRef": {"name": "gate-tls"},
                "clientCaSecretRef": {"name": "broker-ca"},
                "allowedClients": ["broker.forschen-fuer-gesundheit.de"],
            });
        }
        let endpoint: FeasibilityEndpoint = serde_json::from_value(doc).expect("endpoint");
        let children = build::build(&GateInput {
            endpoint: &endpoint,
            site_name: "erlangen",
            image: &image,
            site_ingress: &SiteIngress::default(),
        })
        .expect("gate builds");
        // The namespace as the site prepares it: the token Secret (and the TLS Secrets) with
        // their keys; the ConfigMap as built.
        let mut objects = objects(&children);
        objects.secrets.insert(
            build::token_secret_name(&endpoint),
            BTreeSet::from(["token".to_string()]),
        );
        objects.secrets.insert(
            "gate-tls".into(),
            BTreeSet::from(["tls.crt".to_string(), "tls.key".to_string()]),
        );
        objects
            .secrets
            .insert("broker-ca".into(), BTreeSet::from(["ca.crt".to_string()]));
        let pod = children
            .iter()
            .find(|c| c.resource.kind == "Deployment")
            .and_then(pod_spec)
            .expect("the gate's pod");
        (pod, objects)
    };
    for direct in [false, true] {
        let (pod, objects) = check(direct);
        assert_eq!(
            check_pod(&pod, "diz-erlangen", &objects, &contracts),
            [],
            "direct mode {direct}: the gate as built starts"
        );
    }

    let (pod, objects) = check(true);
    let broken = |what: &str, edit: &dyn Fn(&mut Value)| {
        let mut p = pod.clone();
        edit(&mut p);
        let got = check_pod(&p, "diz-erlangen", &objects, &contracts);
        let (_, failure) = got
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("{what}: the pod would start"));
        (failure.reason(), failure.message().to_string())
    };
    let drop_mount = |name: &'static str| {
        move |p: &mut Value| {
            if let Some(m) = p["containers"][0]["volumeMounts"].as_array_mut() {
                m.retain(|m| m["name"] != name);
            }
        }
    };
    let (reason, message) = broken("no callers.json", &drop_mount("config"));
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(
        message.contains("cannot read /etc/miracolix-gate/callers.json"),
        "{message}"
    );
    let (reason, message) = broken("no token", &drop_mount("dsf-token"));
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(
        message.contains("/etc/miracolix-gate/dsf/token"),
        "the token file callers.json names: {message}"
    );
    let (_, message) = broken("no client CA", &drop_mount("client-ca"));
    assert!(
        message.contains("/etc/miracolix-gate/client-ca/ca.crt"),
        "{message}"
    );
    let (reason, message) = broken("args that are no program", &|p| {
        p["containers"][0]["args"] = serde_json::json!(["serve"]);
    });
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(
        message.contains("unrecognized subcommand 'serve'"),
        "{message}"
    );
    // No args: the image's CMD runs the operator, which serves no /readyz on the gate's ops port.
    let (reason, message) = broken("the image's default program", &|p| {
        if let Some(c) = p["containers"][0].as_object_mut() {
            c.remove("args");
        }
    });
    assert_eq!(reason, "CrashLoopBackOff", "{message}");
    assert!(message.contains("connection refused"), "{message}");
    let (_, message) = broken("no executor", &|p| {
        if let Some(env) = p["containers"][0]["env"].as_array_mut() {
            env.retain(|e| e["name"] != "GATE_EXECUTOR_URL");
        }
    });
    assert!(message.contains("--executor-url"), "{message}");
}

/// The operator's own Deployment (the kustomize manifests the chart is compared with) meets the
/// image's `run` contract, so the program selection by args cannot fail the operator itself.
#[test]
fn the_operator_deployment_meets_the_run_program_contract() {
    let deployment = repo::docs("manifests/base/deployment.yaml").remove(0);
    let pod = deployment
        .pointer("/spec/template/spec")
        .cloned()
        .expect("pod spec");
    let mut objects = Objects::default();
    collect_secret_refs(&pod, &mut objects.secrets);
    let contracts = contracts();
    let container = &pod["containers"][0];
    let selected = contracts
        .for_container(container)
        .expect("a program of the image")
        .expect("a contract");
    assert_eq!(
        selected.program.as_ref().map(|p| p.args.clone()),
        Some(vec!["run".to_string()])
    );
    assert_eq!(
        check_pod(&pod, "miracolix-system", &objects, &contracts),
        []
    );
}
