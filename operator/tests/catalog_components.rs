//! Each component enabled alone (with what it needs): the expected objects, images by digest,
//! probes on the real endpoints, restricted security, labels, owner references, resources.

mod common;

use common::{Fixture, find, json, of_component};
use miracolix_operator::catalog::{
    COMPONENT_LABEL, Child, Component, MANAGED_BY, SITE_LABEL, image_ref, security_exceptions,
};
use serde_json::Value;

struct Case {
    /// [`Component::name`].
    component: &'static str,
    spec: &'static str,
    /// (kind, name) of the component's children, in build order.
    objects: &'static [(&'static str, &'static str)],
    /// (container, startup, readiness, liveness): an HTTP path or `tcp`.
    probes: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        component: "blaze",
        spec: "components:\n  blaze: {}\n",
        objects: &[
            ("ConfigMap", "test-blaze"),
            ("Service", "test-blaze"),
            ("StatefulSet", "test-blaze"),
        ],
        probes: &[("blaze", "/health", "/health", "/health")],
    },
    Case {
        component: "fhir-pseudonymizer",
        spec: "components:\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  vfps:\n    database:\n      cloudNativePG: {}\n",
        objects: &[
            ("ConfigMap", "test-fhir-pseudonymizer"),
            ("ConfigMap", "test-fhir-pseudonymizer-files"),
            ("Service", "test-fhir-pseudonymizer"),
            ("Deployment", "test-fhir-pseudonymizer"),
        ],
        probes: &[("fhir-pseudonymizer", "/live", "/ready", "/live")],
    },
    Case {
        component: "vfps",
        spec: "components:\n  vfps:\n    database:\n      cloudNativePG: {}\n",
        objects: &[
            ("Cluster", "test-vfps-db"),
            ("ConfigMap", "test-vfps"),
            ("Service", "test-vfps"),
            ("Deployment", "test-vfps"),
        ],
        probes: &[("vfps", "/livez", "/readyz", "/livez")],
    },
    Case {
        component: "gpas",
        spec: "components:\n  gpas:\n    database:\n      external:\n        name: ttp-mysql\n",
        objects: &[
            ("ConfigMap", "test-gpas"),
            ("Service", "test-gpas"),
            ("Deployment", "test-gpas"),
        ],
        probes: &[("gpas", "/gpas-web", "/gpas-web", "tcp")],
    },
    Case {
        component: "gics",
        spec: "components:\n  gics:\n    database:\n      external:\n        name: ttp-mysql\n",
        objects: &[
            ("ConfigMap", "test-gics"),
            ("Service", "test-gics"),
            ("Deployment", "test-gics"),
        ],
        probes: &[("gics", "/gics-web", "/gics-web", "tcp")],
    },
    Case {
        component: "fhir-gateway",
        spec: "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  gpas:\n    database:\n      external:\n        name: ttp\n  fhirGateway:\n    database:\n      cloudNativePG: {}\n",
        objects: &[
            ("Cluster", "test-fhir-gateway-db"),
            ("ConfigMap", "test-fhir-gateway"),
            ("Service", "test-fhir-gateway"),
            ("Deployment", "test-fhir-gateway"),
        ],
        probes: &[("fhir-gateway", "/livez", "/readyz", "/livez")],
    },
    Case {
        component: "mainzelliste",
        spec: "components:\n  mainzelliste:\n    apiKeySecretRef:\n      name: ml-api\n      key: api-key\n    configSecretRef:\n      name: ml-config\n      key: mainzelliste.docker.conf\n    database:\n      external:\n        name: ml-db\n",
        objects: &[
            ("ConfigMap", "test-mainzelliste"),
            ("Service", "test-mainzelliste"),
            ("Deployment", "test-mainzelliste"),
        ],
        probes: &[("mainzelliste", "/", "/", "tcp")],
    },
    Case {
        component: "ohdsi",
        spec: "components:\n  ohdsi:\n    database:\n      external:\n        name: omop-db\n",
        objects: &[
            ("ConfigMap", "test-ohdsi-webapi"),
            ("Service", "test-ohdsi-webapi"),
            ("Deployment", "test-ohdsi-webapi"),
            ("ConfigMap", "test-ohdsi-atlas"),
            ("ConfigMap", "test-ohdsi-atlas-files"),
            ("Service", "test-ohdsi-atlas"),
            ("Deployment", "test-ohdsi-atlas"),
            ("ConfigMap", "test-ohdsi-achilles"),
            ("CronJob", "test-ohdsi-achilles"),
        ],
        probes: &[
            (
                "ohdsi-webapi",
                "/WebAPI/info",
                "/WebAPI/info",
                "/WebAPI/info",
            ),
            ("ohdsi-atlas", "/atlas/", "/atlas/", "/atlas/"),
        ],
    },
    Case {
        component: "i2b2",
        spec: "components:\n  i2b2:\n    database:\n      external:\n        name: i2b2-db\n",
        objects: &[
            ("ConfigMap", "test-i2b2-core-server"),
            ("Service", "test-i2b2-core-server"),
            ("Deployment", "test-i2b2-core-server"),
            ("ConfigMap", "test-i2b2-webclient-files"),
            ("Service", "test-i2b2-webclient"),
            ("Deployment", "test-i2b2-webclient"),
        ],
        probes: &[
            (
                "i2b2-core-server",
                "/i2b2/services/listServices",
                "/i2b2/services/listServices",
                "/i2b2/services/listServices",
            ),
            (
                "i2b2-webclient",
                "/webclient/",
                "/webclient/",
                "/webclient/",
            ),
        ],
    },
    Case {
        component: "flare",
        spec: "components:\n  blaze: {}\n  flare: {}\n",
        objects: &[
            ("ConfigMap", "test-flare"),
            ("Service", "test-flare"),
            ("Deployment", "test-flare"),
        ],
        probes: &[("flare", "/cache/stats", "/cache/stats", "/cache/stats")],
    },
    Case {
        component: "torch",
        spec: "components:\n  blaze: {}\n  torch: {}\n",
        objects: &[
            ("PersistentVolumeClaim", "test-torch-output"),
            ("ConfigMap", "test-torch"),
            ("ConfigMap", "test-torch-files"),
            ("Service", "test-torch"),
            ("Deployment", "test-torch"),
        ],
        probes: &[(
            "torch",
            "/actuator/health",
            "/actuator/health",
            "/actuator/health",
        )],
    },
    Case {
        component: "dqa",
        spec: "components:\n  i2b2:\n    database:\n      external:\n        name: i2b2-db\n  dqa: {}\n",
        objects: &[
            ("ConfigMap", "test-dqa-files"),
            ("Service", "test-dqa"),
            ("Deployment", "test-dqa"),
        ],
        probes: &[("dqa", "/ping", "/ping", "/ping")],
    },
];

impl Case {
    fn component(&self) -> Component {
        Component::named(self.component)
            .unwrap_or_else(|| panic!("{} is not in the registry", self.component))
    }
}

fn case(c: Component) -> &'static Case {
    CASES
        .iter()
        .find(|k| k.component == c.name())
        .expect("a case per component")
}

/// Pod specs of a workload child (Deployment, StatefulSet, CronJob).
fn pod_template(child: &Child) -> Option<Value> {
    let j = json(child);
    match child.resource.kind.as_str() {
        "Deployment" | "StatefulSet" => Some(j["spec"]["template"].clone()),
        "CronJob" => Some(j["spec"]["jobTemplate"]["spec"]["template"].clone()),
        _ => None,
    }
}

fn probe_kind(p: &Value) -> String {
    if p.is_null() {
        "none".into()
    } else if let Some(path) = p["httpGet"]["path"].as_str() {
        path.to_string()
    } else if !p["tcpSocket"].is_null() {
        "tcp".into()
    } else {
        format!("unknown {p}")
    }
}

fn exception_for(component: Component) -> bool {
    security_exceptions()
        .iter()
        .any(|(c, _)| *c == component.name())
}

/// The registry is the list of components: every one has a case, and every case names a
/// registered component.
#[test]
fn there_is_a_case_for_every_component() {
    for c in Component::all() {
        case(c);
    }
    for k in CASES {
        k.component();
    }
}

#[test]
fn each_component_builds_its_expected_objects() {
    for case in CASES {
        let f = Fixture::spec_yaml(case.spec);
        let children = f.build();
        let got: Vec<(String, String)> = of_component(&children, case.component())
            .into_iter()
            .filter(|c| c.resource.kind != "NetworkPolicy")
            .map(|c| {
                (
                    c.resource.kind.clone(),
                    c.object.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = case
            .objects
            .iter()
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .collect();
        assert_eq!(got, want, "{}", case.component());
    }
}

#[test]
fn images_are_pinned_by_digest_from_the_release() {
    for case in CASES {
        let f = Fixture::spec_yaml(case.spec);
        let children = f.build();
        let expected: Vec<String> = case
            .component()
            .images()
            .iter()
            .map(|k| image_ref(&f.release.images[*k]))
            .collect();
        for child in of_component(&children, case.component()) {
            let Some(pod) = pod_template(child) else {
                continue;
            };
            for c in pod["spec"]["containers"].as_array().expect("containers") {
                let image = c["image"].as_str().expect("image");
                let (repository, digest) = image.split_once('@').expect("by digest");
                assert!(digest.starts_with("sha256:"), "{image}");
                let last = repository.rsplit('/').next().unwrap_or(repository);
                assert!(!last.contains(':'), "no tag next to the digest: {image}");
                assert!(
                    expected.contains(&image.to_string()),
                    "{image} not in {expected:?}"
                );
            }
        }
    }
}

#[test]
fn probes_use_the_real_health_endpoints() {
    for case in CASES {
        let children = Fixture::spec_yaml(case.spec).build();
        for (container, startup, readiness, liveness) in case.probes {
            let pod = of_component(&children, case.component())
                .into_iter()
                .filter_map(pod_template)
                .find(|p| p["spec"]["containers"][0]["name"] == *container)
                .unwrap_or_else(|| panic!("a pod with container {container}"));
            let c = &pod["spec"]["containers"][0];
            assert_eq!(
                probe_kind(&c["startupProbe"]),
                *startup,
                "{container} startup"
            );
            assert_eq!(
                probe_kind(&c["readinessProbe"]),
                *readiness,
                "{container} readiness"
            );
            assert_eq!(
                probe_kind(&c["livenessProbe"]),
                *liveness,
                "{container} liveness"
            );
        }
    }
}

#[test]
fn ttp_tools_get_ten_minutes_to_start() {
    for c in ["gpas", "gics"].map(common::component) {
        let children = Fixture::spec_yaml(case(c).spec).build();
        let d = json(find(&children, "Deployment", &format!("test-{}", c.name())));
        let p = &d["spec"]["template"]["spec"]["containers"][0]["startupProbe"];
        let seconds =
            p["periodSeconds"].as_i64().unwrap_or(0) * p["failureThreshold"].as_i64().unwrap_or(0);
        assert!(seconds >= 600, "{c}: {seconds}s");
    }
}

#[test]
fn every_pod_runs_restricted_unless_documented() {
    for case in CASES {
        let children = Fixture::spec_yaml(case.spec).build();
        for child in of_component(&children, case.component()) {
            let Some(pod) = pod_template(child) else {
                continue;
            };
            let spec = &pod["spec"];
            let name = child.key().2;
            assert_eq!(spec["automountServiceAccountToken"], false, "{name}");
            assert_eq!(
                spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{name}"
            );
            for c in spec["containers"].as_array().expect("containers") {
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{name}"
                );
                assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
                let strict = sc["runAsNonRoot"] == true
                    && sc["readOnlyRootFilesystem"] == true
                    && sc["capabilities"]["add"].is_null();
                if !strict {
                    assert!(
                        exception_for(case.component()),
                        "{name} is not restricted and has no documented exception"
                    );
                }
                if sc["runAsNonRoot"] == true {
                    assert_ne!(sc["runAsUser"], 0, "{name}");
                }
                if sc["readOnlyRootFilesystem"] == true {
                    let tmp = c["volumeMounts"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["mountPath"] == "/tmp"));
                    assert!(tmp, "{name} has a writable /tmp");
                }
            }
        }
    }
}

#[test]
fn blaze_runs_as_its_own_uid_with_a_data_volume() {
    let f = Fixture::spec_yaml(
        "components:\n  blaze:\n    storage:\n      size: 100Gi\n      storageClassName: fast\n",
    );
    let sts = json(find(&f.build(), "StatefulSet", "test-blaze"));
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 1001);
    assert_eq!(pod["securityContext"]["fsGroup"], 1001);
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "data");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "100Gi");
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    assert!(
        claim["metadata"]["labels"]["app.kubernetes.io/version"].is_null(),
        "claim templates are immutable"
    );
    let mounts = pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "data" && m["mountPath"] == "/app/data")
    );
    assert_eq!(sts["spec"]["replicas"], 1);

    let default = Fixture::spec_yaml("components:\n  blaze: {}\n");
    let sts = json(find(&default.build(), "StatefulSet", "test-blaze"));
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "8Gi"
    );
}

#[test]
fn every_object_and_pod_carries_the_standard_labels() {
    for case in CASES {
        let f = Fixture::spec_yaml(case.spec);
        let children = f.build();
        for child in &children {
            let name = child.key();
            let labels = child.object.metadata.labels.clone().unwrap_or_default();
            for key in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
                "app.kubernetes.io/version",
            ] {
                assert!(labels.contains_key(key), "{name:?} lacks {key}");
            }
            assert_eq!(
                labels.get("app.kubernetes.io/part-of").map(String::as_str),
                Some("miracolix"),
                "{name:?}"
            );
            assert_eq!(
                labels.get(MANAGED_BY.0).map(String::as_str),
                Some(MANAGED_BY.1),
                "{name:?}"
            );
            assert_eq!(
                labels.get(SITE_LABEL).map(String::as_str),
                Some("test"),
                "{name:?}"
            );
            if let Some(c) = child.component {
                assert_eq!(
                    labels.get(COMPONENT_LABEL).map(String::as_str),
                    Some(c.name()),
                    "{name:?}"
                );
            }
            if let Some(pod) = pod_template(child) {
                let pl = &pod["metadata"]["labels"];
                assert_eq!(pl[SITE_LABEL], "test", "{name:?}");
                assert!(pl["app.kubernetes.io/version"].is_string(), "{name:?}");
                assert_eq!(
                    pl[COMPONENT_LABEL],
                    child.component.map(|c| c.name()).unwrap_or_default(),
                    "{name:?}"
                );
            }
        }
    }
}

#[test]
fn owner_references_on_everything_but_volumes_and_databases() {
    for case in CASES {
        let f = Fixture::spec_yaml(case.spec);
        for child in f.build() {
            let keep = matches!(
                child.resource.kind.as_str(),
                "PersistentVolumeClaim" | "Cluster"
            );
            assert_eq!(child.is_owned(), !keep, "{:?}", child.key());
            if let Some(refs) = &child.object.metadata.owner_references {
                let r = &refs[0];
                assert_eq!(r.api_version, "diz.miracum.org/v1alpha1");
                assert_eq!(r.kind, "DizSite");
                assert_eq!(r.name, "test");
                assert_eq!(r.uid, f.uid);
                assert_eq!(r.controller, Some(true));
                assert_eq!(r.block_owner_deletion, Some(true));
            }
        }
    }
}

fn resources(children: &[Child], kind: &str, name: &str) -> Value {
    let pod = pod_template(find(children, kind, name)).expect("workload");
    pod["spec"]["containers"][0]["resources"].clone()
}

#[test]
fn presets_apply_and_overrides_win_field_by_field() {
    let medium = Fixture::spec_yaml("components:\n  blaze: {}\n").build();
    assert_eq!(
        resources(&medium, "StatefulSet", "test-blaze")["limits"]["memory"],
        "4Gi"
    );
    let large =
        Fixture::spec_yaml("components:\n  blaze: {}\n  flare:\n    resources: large\n").build();
    assert_eq!(
        resources(&large, "Deployment", "test-flare")["limits"]["memory"],
        "8Gi"
    );
    let small = Fixture::spec_yaml("components:\n  blaze:\n    resources: small\n").build();
    assert_eq!(
        resources(&small, "StatefulSet", "test-blaze")["requests"]["memory"],
        "2Gi"
    );

    let over = Fixture::spec_yaml(
        "components:\n  ohdsi:\n    resources: medium\n    resourceOverrides:\n      limits:\n        memory: 6Gi\n      requests:\n        cpu: 1500m\n    database:\n      external:\n        name: omop\n",
    )
    .build();
    let r = resources(&over, "Deployment", "test-ohdsi-webapi");
    assert_eq!(r["limits"]["memory"], "6Gi");
    assert_eq!(r["requests"]["cpu"], "1500m");
    assert_eq!(
        r["requests"]["memory"], "3Gi",
        "untouched values keep the preset"
    );
    assert_eq!(r["limits"]["cpu"], "4");
    // Overrides target the primary part only.
    assert_eq!(
        resources(&over, "Deployment", "test-ohdsi-atlas")["limits"]["memory"],
        "128Mi"
    );
}

#[test]
fn replicas_default_to_one_and_follow_the_spec() {
    let f = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  fhirGateway:\n    replicas: 3\n  gpas:\n    database:\n      external:\n        name: ttp\n",
    );
    let children = f.build();
    assert_eq!(
        json(find(&children, "Deployment", "test-fhir-gateway"))["spec"]["replicas"],
        3
    );
    assert_eq!(
        json(find(&children, "Deployment", "test-gpas"))["spec"]["replicas"],
        1
    );
}

fn env_of(children: &[Child], kind: &str, name: &str) -> (Value, Value) {
    let pod = pod_template(find(children, kind, name)).expect("workload");
    let env = pod["spec"]["containers"][0]["env"].clone();
    let cm = children
        .iter()
        .find(|c| c.resource.kind == "ConfigMap" && c.object.metadata.name.as_deref() == Some(name))
        .map(|c| json(c)["data"].clone())
        .unwrap_or(Value::Null);
    (env, cm)
}

fn env_secret(env: &Value, name: &str) -> Option<(String, String)> {
    env.as_array()?.iter().find(|e| e["name"] == name).map(|e| {
        let r = &e["valueFrom"]["secretKeyRef"];
        (
            r["name"].as_str().unwrap_or("").into(),
            r["key"].as_str().unwrap_or("").into(),
        )
    })
}

#[test]
fn pseudonymizer_prefers_vfps_and_falls_back_to_gpas() {
    let with_vfps = Fixture::spec_yaml(case(common::component("fhir-pseudonymizer")).spec).build();
    let (_, cm) = env_of(&with_vfps, "Deployment", "test-fhir-pseudonymizer");
    assert_eq!(cm["PseudonymizationService"], "Vfps");
    assert_eq!(cm["Vfps__Address"], "http://test-vfps:8081");

    let with_gpas = Fixture::spec_yaml("components:\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  gpas:\n    database:\n      external:\n        name: ttp\n").build();
    let (_, cm) = env_of(&with_gpas, "Deployment", "test-fhir-pseudonymizer");
    assert_eq!(cm["PseudonymizationService"], "gPAS");
    assert_eq!(cm["gPAS__Url"], "http://test-gpas:8080/ttp-fhir/fhir/gpas/");
    assert_eq!(cm["gPAS__Version"], "2024.3.0");
}

#[test]
fn gateway_flare_and_torch_are_wired_to_their_dependencies() {
    let children = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  flare: {}\n  torch: {}\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  gpas:\n    database:\n      external:\n        name: ttp\n  fhirGateway: {}\n",
    )
    .build();
    let (_, gw) = env_of(&children, "Deployment", "test-fhir-gateway");
    assert_eq!(
        gw["SERVICES_PSEUDONYMIZER_URL"],
        "http://test-fhir-pseudonymizer:8080/fhir"
    );
    assert_eq!(gw["SERVICES_FHIRSERVER_URL"], "http://test-blaze:8080/fhir");
    assert_eq!(gw["SERVICES_PSQL_ENABLED"], "false");
    let (_, flare) = env_of(&children, "Deployment", "test-flare");
    assert_eq!(flare["FLARE_FHIR_SERVER"], "http://test-blaze:8080/fhir");
    let (_, torch) = env_of(&children, "Deployment", "test-torch");
    assert_eq!(torch["TORCH_FHIR_URL"], "http://test-blaze:8080/fhir");
    assert_eq!(torch["TORCH_BASE_URL"], "http://test-torch:8080");
    // Cohorts by CQL on Blaze: FLARE is never called.
    assert_eq!(torch["TORCH_USE_CQL"], "true");
    assert!(torch["TORCH_FLARE_URL"].is_null());
    let torch_pod = pod_template(find(&children, "Deployment", "test-torch")).expect("pod");
    assert_eq!(
        torch_pod["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter(|v| v["persistentVolumeClaim"]["claimName"] == "test-torch-output")
            .count(),
        1
    );
    assert_eq!(
        json(find(&children, "Deployment", "test-torch"))["spec"]["strategy"]["type"],
        "Recreate"
    );
}

#[test]
fn databases_are_wired_from_secrets_only() {
    let children = Fixture::spec_yaml(
        "components:\n  vfps:\n    database:\n      cloudNativePG:\n        instances: 3\n        storageSize: 5Gi\n  gpas:\n    database:\n      external:\n        name: ttp-mysql\n",
    )
    .build();
    let (env, _) = env_of(&children, "Deployment", "test-vfps");
    assert_eq!(
        env_secret(&env, "MIRACOLIX_DB_NAME"),
        Some(("test-vfps-db-app".into(), "dbname".into()))
    );
    assert_eq!(
        env_secret(&env, "PGPASSWORD"),
        Some(("test-vfps-db-app".into(), "password".into()))
    );
    assert_eq!(
        env_secret(&env, "PGUSER"),
        Some(("test-vfps-db-app".into(), "username".into()))
    );
    // Credentials by the variables Npgsql reads, never inside the connection string.
    let cs = env
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "ConnectionStrings__PostgreSQL")
        .expect("connection string");
    assert!(
        cs["value"].as_str().is_some_and(|v| v
            .starts_with("Host=$(MIRACOLIX_DB_HOST);Port=$(MIRACOLIX_DB_PORT);Database=")
            && !v.contains("Password")
            && !v.contains("Username")),
        "{cs}"
    );
    let cluster = json(find(&children, "Cluster", "test-vfps-db"));
    assert_eq!(cluster["apiVersion"], "postgresql.cnpg.io/v1");
    assert_eq!(cluster["spec"]["instances"], 3);
    assert_eq!(cluster["spec"]["storage"]["size"], "5Gi");
    assert_eq!(cluster["spec"]["bootstrap"]["initdb"]["database"], "vfps");

    let (env, _) = env_of(&children, "Deployment", "test-gpas");
    assert_eq!(
        env_secret(&env, "TTP_GPAS_DB_HOST"),
        Some(("ttp-mysql".into(), "host".into()))
    );
    assert_eq!(
        env_secret(&env, "TTP_GPAS_DB_PASS"),
        Some(("ttp-mysql".into(), "password".into()))
    );
    // No secret value ever appears in a ConfigMap.
    for c in children.iter().filter(|c| c.resource.kind == "ConfigMap") {
        let data = json(c)["data"].to_string().to_lowercase();
        assert!(!data.contains("password"), "{:?}", c.key());
    }
}

#[test]
fn extra_env_is_appended_after_operator_env() {
    let children = Fixture::spec_yaml(
        "components:\n  blaze:\n    env:\n      - name: LOG_LEVEL\n        value: debug\n      - name: TOKEN\n        secretKeyRef:\n          name: s\n          key: k\n",
    )
    .build();
    let (env, _) = env_of(&children, "StatefulSet", "test-blaze");
    let names: Vec<_> = env
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["LOG_LEVEL", "TOKEN"]);
    assert_eq!(env_secret(&env, "TOKEN"), Some(("s".into(), "k".into())));
}

#[test]
fn oidc_reaches_the_components_that_support_it() {
    let children = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  flare: {}\n  ohdsi:\n    database:\n      external:\n        name: omop\ningress:\n  host: diz.example.org\n  tls:\n    secretName: diz-tls\nauth:\n  oidc:\n    issuerUrl: https://login.example.org/realms/diz\n    clientId: miracolix\n    clientSecretRef:\n      name: oidc\n      key: secret\n",
    )
    .build();
    let (_, blaze) = env_of(&children, "StatefulSet", "test-blaze");
    assert_eq!(
        blaze["OPENID_PROVIDER_URL"],
        "https://login.example.org/realms/diz"
    );
    let (env, flare) = env_of(&children, "Deployment", "test-flare");
    assert_eq!(flare["FLARE_FHIR_OAUTH_CLIENT_ID"], "miracolix");
    assert_eq!(
        env_secret(&env, "FLARE_FHIR_OAUTH_CLIENT_SECRET"),
        Some(("oidc".into(), "secret".into()))
    );
    let (_, webapi) = env_of(&children, "Deployment", "test-ohdsi-webapi");
    assert_eq!(
        webapi["SECURITY_OID_URL"],
        "https://login.example.org/realms/diz/.well-known/openid-configuration"
    );
}

#[test]
fn config_changes_roll_the_pods() {
    let hash = |spec: &str| {
        let children = Fixture::spec_yaml(spec).build();
        let pod = pod_template(find(&children, "StatefulSet", "test-blaze")).expect("pod");
        pod["metadata"]["annotations"]["diz.miracum.org/config-hash"].clone()
    };
    let plain = hash("components:\n  blaze: {}\n");
    assert!(plain.is_string());
    assert_eq!(plain, hash("components:\n  blaze: {}\n"));
    assert_ne!(
        plain,
        hash(
            "components:\n  blaze: {}\nauth:\n  oidc:\n    issuerUrl: https://a.example.org\n    clientId: x\n"
        )
    );
}

const PSEUDONYMIZER: &str = "  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n";

#[test]
fn blaze_links_to_its_service_and_sizes_heap_and_block_cache_from_the_limit() {
    // Exposed (OIDC and an ingress) or not: links are built from the Service; ingress clients
    // get theirs from the forwarded headers.
    let children = Fixture::spec_yaml(
        "components:\n  blaze:\n    resources: large\nauth:\n  oidc:\n    issuerUrl: https://login.example.org\n    clientId: c\ningress:\n  host: diz.example.org\n  tls:\n    secretName: cert\n",
    )
    .build();
    let (_, cm) = env_of(&children, "StatefulSet", "test-blaze");
    assert_eq!(cm["BASE_URL"], "http://test-blaze:8080");
    assert_eq!(cm["JAVA_TOOL_OPTIONS"], "-XX:MaxRAMPercentage=25");
    // A quarter of 8Gi off-heap, and the guide's resource cache for a 2 GiB heap.
    assert_eq!(cm["DB_BLOCK_CACHE_SIZE"], "2048");
    assert_eq!(cm["DB_RESOURCE_CACHE_SIZE"], "500000");

    let small = Fixture::spec_yaml("components:\n  blaze:\n    resources: small\n").build();
    let (_, cm) = env_of(&small, "StatefulSet", "test-blaze");
    assert_eq!(cm["DB_BLOCK_CACHE_SIZE"], "512");
    assert!(
        cm["DB_RESOURCE_CACHE_SIZE"].is_null(),
        "default below 2 GiB heap"
    );
    let over = Fixture::spec_yaml(
        "components:\n  blaze:\n    resourceOverrides:\n      limits:\n        memory: 6Gi\n",
    )
    .build();
    let (_, cm) = env_of(&over, "StatefulSet", "test-blaze");
    assert_eq!(cm["DB_BLOCK_CACHE_SIZE"], "1536");
}

#[test]
fn pseudonymizer_rules_come_from_a_mounted_config_and_keys_from_the_secret() {
    let children = Fixture::spec_yaml(case(common::component("fhir-pseudonymizer")).spec).build();
    let (env, cm) = env_of(&children, "Deployment", "test-fhir-pseudonymizer");
    assert_eq!(
        cm["AnonymizationEngineConfigPath"],
        "/etc/fhir-pseudonymizer/anonymization.yaml"
    );
    assert_eq!(cm["DOTNET_EnableDiagnostics"], "0");
    assert_eq!(
        env_secret(&env, "Anonymization__CryptoHashKey"),
        Some(("fhir-pseudonymizer-keys".into(), "crypto-hash-key".into()))
    );
    assert_eq!(
        env_secret(&env, "Anonymization__EncryptKey"),
        Some(("fhir-pseudonymizer-keys".into(), "encrypt-key".into()))
    );
    let files = json(find(
        &children,
        "ConfigMap",
        "test-fhir-pseudonymizer-files",
    ));
    let config = files["data"]["anonymization.yaml"]
        .as_str()
        .expect("anonymization.yaml");
    assert!(config.contains("method: pseudonymize"), "{config}");
    assert!(
        config.contains("namespace: 'patient-identifiers'"),
        "{config}"
    );
    assert!(
        config.contains("cryptoHashKey: \"\"") && config.contains("encryptKey: \"\""),
        "the keys come from the environment only: {config}"
    );
    let pod = pod_template(find(&children, "Deployment", "test-fhir-pseudonymizer")).expect("pod");
    assert!(
        pod["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["mountPath"] == "/etc/fhir-pseudonymizer/anonymization.yaml")
    );

    // With gPAS the rule names a domain.
    let gpas = Fixture::spec_yaml(&format!(
        "components:\n{PSEUDONYMIZER}  gpas:\n    database:\n      external:\n        name: ttp\n"
    ))
    .build();
    let files = json(find(&gpas, "ConfigMap", "test-fhir-pseudonymizer-files"));
    let config = files["data"]["anonymization.yaml"]
        .as_str()
        .expect("config");
    assert!(config.contains("domain: 'patient-identifiers'"), "{config}");
}

#[test]
fn vfps_migrates_alone_before_serving_and_creates_the_pseudonymizers_namespace() {
    let children = Fixture::spec_yaml(case(common::component("fhir-pseudonymizer")).spec).build();
    let d = json(find(&children, "Deployment", "test-vfps"));
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        65534
    );
    let (_, cm) = env_of(&children, "Deployment", "test-vfps");
    assert_eq!(cm["ForceRunDatabaseMigrations"], "true");
    assert_eq!(cm["DOTNET_EnableDiagnostics"], "0");
    assert_eq!(cm["Init__v1__Namespaces__0__Name"], "patient-identifiers");
    assert_eq!(
        cm["Init__v1__Namespaces__0__PseudonymGenerationMethod"],
        "SecureRandomBase64UrlEncoded"
    );
    // Without the pseudonymizer there is no namespace to create.
    let alone = Fixture::spec_yaml(case(common::component("vfps")).spec).build();
    let (_, cm) = env_of(&alone, "Deployment", "test-vfps");
    assert!(cm["Init__v1__Namespaces__0__Name"].is_null());
    assert_eq!(cm["ForceRunDatabaseMigrations"], "true");
}

#[test]
fn gateway_probes_management_port_loinc_and_heap() {
    let children = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: k}, pseudonymization: {namespace: p}}\n  gpas:\n    database:\n      external:\n        name: ttp\n  fhirGateway:\n    resources: small\n",
    )
    .build();
    let (_, gw) = env_of(&children, "Deployment", "test-fhir-gateway");
    assert_eq!(
        gw["MANAGEMENT_ENDPOINT_HEALTH_PROBES_ADD_ADDITIONAL_PATHS"],
        "true"
    );
    assert_eq!(gw["MANAGEMENT_SERVER_PORT"], "8081");
    assert_eq!(gw["SERVICES_LOINC_CONVERSIONS_ENABLED"], "false");
    assert_eq!(gw["SPRING_SQL_INIT_MODE"], "never");
    // 60 % of the 1Gi limit, as -Xmx: a percentage would lose to the entrypoint's.
    assert_eq!(gw["JAVA_TOOL_OPTIONS"], "-Xmx614m");

    // A site with its own converter keeps upstream's default (on).
    let with_converter = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: k}, pseudonymization: {namespace: p}}\n  gpas:\n    database:\n      external:\n        name: ttp\n  fhirGateway:\n    env:\n      - name: SERVICES_LOINC_CONVERSIONS_URL\n        value: http://loinc-converter:8080/api/v1\n    database:\n      external:\n        name: gw-db\n",
    )
    .build();
    let (env, gw) = env_of(&with_converter, "Deployment", "test-fhir-gateway");
    assert!(gw["SERVICES_LOINC_CONVERSIONS_ENABLED"].is_null());
    assert!(gw["SPRING_SQL_INIT_MODE"].is_null());
    assert_eq!(gw["SERVICES_PSQL_ENABLED"], "true");
    assert_eq!(
        env_secret(&env, "SPRING_DATASOURCE_PASSWORD"),
        Some(("gw-db".into(), "password".into()))
    );
}

fn container_of(children: &[Child], kind: &str, name: &str) -> Value {
    pod_template(find(children, kind, name)).expect("workload")["spec"]["containers"][0].clone()
}

fn mounts_of(container: &Value) -> Vec<String> {
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["mountPath"].as_str().map(str::to_string))
        .collect()
}

fn file_of(children: &[Child], config_map: &str, key: &str) -> String {
    json(find(children, "ConfigMap", config_map))["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{config_map} has {key}"))
        .to_string()
}

const OHDSI_OIDC: &str = "components:\n  ohdsi:\n    database:\n      external:\n        name: omop\ningress:\n  host: diz.example.org\n  tls:\n    secretName: diz-tls\nauth:\n  oidc:\n    issuerUrl: https://login.example.org/realms/diz\n    clientId: atlas\n    clientSecretRef:\n      name: oidc\n      key: secret\n";

#[test]
fn atlas_start_hook_leaves_the_mounted_config_alone() {
    let children = Fixture::spec_yaml(case(common::component("ohdsi")).spec).build();
    let (_, atlas) = env_of(&children, "Deployment", "test-ohdsi-atlas");
    // Empty: the hook rewrites config-local.js only for a non-empty WEBAPI_URL.
    assert_eq!(atlas["WEBAPI_URL"], "");
    let mounts = mounts_of(&container_of(&children, "Deployment", "test-ohdsi-atlas"));
    assert!(mounts.contains(&"/usr/share/nginx/html/atlas/js/config-local.js".to_string()));
    // Nothing at CONFIG_PATH, which the hook would copy over the same file.
    assert!(
        mounts.iter().all(|m| !m.starts_with("/etc/atlas")),
        "{mounts:?}"
    );
}

#[test]
fn webapi_logs_in_through_oidc_on_the_public_host_only() {
    let children = Fixture::spec_yaml(OHDSI_OIDC).build();
    let (env, webapi) = env_of(&children, "Deployment", "test-ohdsi-webapi");
    assert_eq!(webapi["SECURITY_PROVIDER"], "AtlasRegularSecurity");
    assert_eq!(
        webapi["SECURITY_OAUTH_CALLBACK_API"],
        "https://diz.example.org/WebAPI/user/oauth/callback"
    );
    assert_eq!(
        webapi["SECURITY_OAUTH_CALLBACK_UI"],
        "https://diz.example.org/atlas/#/welcome"
    );
    assert_eq!(
        webapi["SECURITY_OID_LOGOUTURL"],
        "https://diz.example.org/atlas/#/welcome"
    );
    assert_eq!(webapi["SECURITY_ORIGIN"], "https://diz.example.org");
    assert_eq!(webapi["SECURITY_AUTH_OPENID_ENABLED"], "true");
    for login in [
        "JDBC", "LDAP", "AD", "KERBEROS", "WINDOWS", "CAS", "GOOGLE", "FACEBOOK", "GITHUB",
    ] {
        assert_eq!(
            webapi[format!("SECURITY_AUTH_{login}_ENABLED")],
            "false",
            "{login}"
        );
    }
    // The authentication pool goes to the site's database, never the image's baked-in host.
    let url = env
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "SECURITY_DB_DATASOURCE_URL")
        .expect("SECURITY_DB_DATASOURCE_URL");
    assert_eq!(
        url["value"],
        "jdbc:postgresql://$(MIRACOLIX_DB_HOST):$(MIRACOLIX_DB_PORT)/$(MIRACOLIX_DB_NAME)"
    );
    assert_eq!(
        env_secret(&env, "SECURITY_DB_DATASOURCE_PASSWORD"),
        Some(("omop".into(), "password".into()))
    );
    assert_eq!(
        env_secret(&env, "SECURITY_OID_APISECRET"),
        Some(("oidc".into(), "secret".into()))
    );
    assert_eq!(webapi["JAVA_OPTS"], "-XX:MaxRAMPercentage=75.0");
    // Tokens are signed with per-pod keys.
    assert_eq!(common::component("ohdsi").max_replicas(), Some(1));
}

#[test]
fn achilles_writes_its_workspace() {
    let children = Fixture::spec_yaml(case(common::component("ohdsi")).spec).build();
    let mounts = mounts_of(&container_of(&children, "CronJob", "test-ohdsi-achilles"));
    assert!(
        mounts.contains(&"/opt/achilles/workspace".to_string()),
        "{mounts:?}"
    );
}

#[test]
fn i2b2_web_client_runs_restricted_and_proxies_to_the_core_server() {
    let children = Fixture::spec_yaml(case(common::component("i2b2")).spec).build();
    let web = container_of(&children, "Deployment", "test-i2b2-webclient");
    let sc = &web["securityContext"];
    assert_eq!(sc["runAsUser"], 33);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(web["ports"][0]["containerPort"], 8080);
    let mounts = mounts_of(&web);
    for dir in [
        "/var/run/apache2",
        "/var/lock/apache2",
        "/var/log/apache2",
        "/var/lib/php/sessions",
        "/tmp",
    ] {
        assert!(mounts.contains(&dir.to_string()), "{dir}: {mounts:?}");
    }
    let svc = json(find(&children, "Service", "test-i2b2-webclient"));
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        file_of(&children, "test-i2b2-webclient-files", "ports.conf"),
        "Listen 8080\n"
    );
    let proxy = file_of(&children, "test-i2b2-webclient-files", "i2b2_proxy.conf");
    assert!(
        proxy.contains("ProxyPass /i2b2/ http://test-i2b2-core-server:8080/i2b2/"),
        "{proxy}"
    );
    assert!(proxy.contains("Require ip 127.0.0.1 ::1"), "{proxy}");
    let domains: Value = serde_json::from_str(&file_of(
        &children,
        "test-i2b2-webclient-files",
        "i2b2_config_domains.json",
    ))
    .expect("domains are JSON");
    assert_eq!(
        domains["lstDomains"][0]["urlCellPM"],
        "http://127.0.0.1:8080/i2b2/services/PMService/"
    );
    assert_eq!(domains["lstDomains"].as_array().map(Vec::len), Some(1));
    // Only the core server keeps an exception.
    assert!(
        security_exceptions()
            .iter()
            .all(|(_, text)| !text.contains("web client"))
    );
}

#[test]
fn i2b2_core_server_runs_non_root_in_group_zero_with_every_cell() {
    let children = Fixture::spec_yaml(case(common::component("i2b2")).spec).build();
    let core = container_of(&children, "Deployment", "test-i2b2-core-server");
    let sc = &core["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_ne!(sc["runAsUser"], 0);
    assert_eq!(sc["runAsGroup"], 0);
    let (env, cm) = env_of(&children, "Deployment", "test-i2b2-core-server");
    assert_eq!(cm["HOME"], "/tmp");
    assert_eq!(cm["DS_IM_SCHEMA"], "i2b2imdata");
    assert!(
        cm["JAVA_OPTS"]
            .as_str()
            .is_some_and(|o| o.contains("MaxRAMPercentage"))
    );
    for v in ["DS_IM_IP", "DS_IM_PORT", "DS_IM_DB", "DS_IM_USER"] {
        assert!(env_secret(&env, v).is_some(), "{v}");
    }
    assert_eq!(
        env_secret(&env, "DS_IM_PASS"),
        Some(("i2b2-db".into(), "password".into()))
    );
}

#[test]
fn flare_and_torch_size_their_heap_from_the_limit_and_keep_a_writable_cache() {
    let children = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  flare:\n    resources: small\n  torch: {}\n",
    )
    .build();
    let (_, flare) = env_of(&children, "Deployment", "test-flare");
    assert_eq!(flare["JAVA_TOOL_OPTIONS"], "-XX:MaxRAMPercentage=50.0");
    // An eighth of the 2Gi limit.
    assert_eq!(flare["FLARE_CACHE_MEM_SIZE_MB"], "256");
    let mounts = mounts_of(&container_of(&children, "Deployment", "test-flare"));
    assert!(mounts.contains(&"/app/cache".to_string()), "{mounts:?}");
    let (_, torch) = env_of(&children, "Deployment", "test-torch");
    assert_eq!(torch["JAVA_TOOL_OPTIONS"], "-XX:MaxRAMPercentage=70.0");
    assert_eq!(
        torch["TORCH_OUTPUT_FILE_SERVER_URL"],
        "http://test-torch:8081"
    );
    let large =
        Fixture::spec_yaml("components:\n  blaze: {}\n  flare:\n    resources: large\n").build();
    assert_eq!(
        env_of(&large, "Deployment", "test-flare").1["FLARE_CACHE_MEM_SIZE_MB"],
        "1024"
    );
}

#[test]
fn flare_and_torch_log_in_to_blaze_only_with_a_client_secret() {
    let without = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  flare: {}\n  torch: {}\nauth:\n  oidc:\n    issuerUrl: https://login.example.org/realms/diz\n    clientId: miracolix\n",
    )
    .build();
    for (name, prefix) in [("test-flare", "FLARE"), ("test-torch", "TORCH")] {
        let (env, cm) = env_of(&without, "Deployment", name);
        assert!(
            cm[format!("{prefix}_FHIR_OAUTH_ISSUER_URI")].is_null(),
            "{name}"
        );
        assert!(
            cm[format!("{prefix}_FHIR_OAUTH_CLIENT_ID")].is_null(),
            "{name}"
        );
        assert!(env_secret(&env, &format!("{prefix}_FHIR_OAUTH_CLIENT_SECRET")).is_none());
    }
    let with = Fixture::spec_yaml(
        "components:\n  blaze: {}\n  flare: {}\n  torch: {}\nauth:\n  oidc:\n    issuerUrl: https://login.example.org/realms/diz\n    clientId: miracolix\n    clientSecretRef:\n      name: oidc\n      key: secret\n",
    )
    .build();
    for (name, prefix) in [("test-flare", "FLARE"), ("test-torch", "TORCH")] {
        let (env, cm) = env_of(&with, "Deployment", name);
        assert_eq!(
            cm[format!("{prefix}_FHIR_OAUTH_CLIENT_ID")],
            "miracolix",
            "{name}"
        );
        assert_eq!(
            env_secret(&env, &format!("{prefix}_FHIR_OAUTH_CLIENT_SECRET")),
            Some(("oidc".into(), "secret".into()))
        );
    }
}

/// TORCH hands out result links below its file server, which serves the output volume read-only
/// next to it (as upstream deploys it), pinned by the release like every image.
#[test]
fn torch_results_are_served_by_its_file_server() {
    let children = Fixture::spec_yaml(case(common::component("torch")).spec).build();
    let d = json(find(&children, "Deployment", "test-torch"));
    let cm = json(find(&children, "ConfigMap", "test-torch"));
    assert_eq!(
        cm["data"]["TORCH_OUTPUT_FILE_SERVER_URL"],
        "http://test-torch:8081"
    );
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    let files = containers
        .iter()
        .find(|c| c["name"] == "files")
        .expect("a file server container");
    assert!(
        files["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("nginxinc/nginx-unprivileged@sha256:")),
        "{}",
        files["image"]
    );
    let output = files["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == "/app/output")
        .expect("the output volume");
    assert_eq!(
        output["readOnly"], true,
        "the file server never writes results"
    );
    assert_eq!(files["securityContext"]["readOnlyRootFilesystem"], true);
    let svc = json(find(&children, "Service", "test-torch"));
    assert!(
        svc["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["port"] == 8081 && p["targetPort"] == "files")
    );
}
