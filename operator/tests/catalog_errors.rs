//! Every CatalogError variant from a minimal spec, and all problems reported at once.

mod common;

use common::Fixture;
use miracolix_operator::catalog::{self, CatalogError, Component, DatabaseNeed};

fn errors(f: &Fixture) -> Vec<CatalogError> {
    let v = catalog::validate(&f.input()).expect_err("spec is invalid");
    assert_eq!(
        catalog::build(&f.input()).expect_err("build refuses too"),
        v
    );
    v
}

fn reasons(errors: &[CatalogError]) -> Vec<&'static str> {
    errors.iter().map(CatalogError::reason).collect()
}

#[test]
fn dependency_disabled_names_the_field_and_what_is_missing() {
    let e = errors(&Fixture::spec_yaml("components:\n  flare: {}\n"));
    assert_eq!(reasons(&e), ["DependencyDisabled"]);
    assert_eq!(
        e[0].to_string(),
        "spec.components.flare needs spec.components.blaze (the FHIR server), which is disabled"
    );
    // A disabled component counts as absent.
    let e = errors(&Fixture::spec_yaml(
        "components:\n  blaze:\n    enabled: false\n  flare: {}\n",
    ));
    assert_eq!(reasons(&e), ["DependencyDisabled"]);
}

#[test]
fn pseudonymizer_without_a_pseudonym_service_names_both_options() {
    let e = errors(&Fixture::spec_yaml(
        "components:\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n",
    ));
    assert_eq!(reasons(&e), ["DependencyDisabled"]);
    let msg = e[0].to_string();
    assert!(
        msg.contains("spec.components.vfps") && msg.contains("spec.components.gpas"),
        "{msg}"
    );
}

#[test]
fn image_missing_names_release_and_key() {
    let mut f = Fixture::spec_yaml("components:\n  blaze: {}\n");
    f.release.images.remove("blaze");
    let e = errors(&f);
    assert_eq!(reasons(&e), ["ImageMissing"]);
    assert!(e[0].to_string().contains("'blaze'") && e[0].to_string().contains("miracolix-2026.1"));
}

#[test]
fn database_required_for_components_that_need_one() {
    let needing: Vec<Component> = Component::all()
        .filter(|c| matches!(c.database_need(), DatabaseNeed::Required(_)))
        .collect();
    assert!(needing.len() >= 6, "{needing:?}");
    for component in needing {
        let field = component.field();
        let e = errors(&Fixture::spec_yaml(&format!(
            "components:\n  {field}: {}\n",
            component.descriptor().minimal
        )));
        assert_eq!(reasons(&e), ["DatabaseRequired"], "{field}");
        assert_eq!(e[0].component(), Some(component));
        assert!(
            e[0].to_string()
                .contains(&format!("spec.components.{field}.database.external"))
        );
    }
    // The gateway's database is optional.
    assert!(catalog::validate(&Fixture::spec_yaml("components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  gpas:\n    database:\n      external:\n        name: t\n  fhirGateway: {}\n").input()).is_ok());
}

#[test]
fn mysql_components_refuse_cloudnativepg() {
    let e = errors(&Fixture::spec_yaml(
        "components:\n  gpas:\n    database:\n      cloudNativePG: {}\n",
    ));
    assert_eq!(reasons(&e), ["DatabaseNotSupported"]);
    assert!(e[0].to_string().contains("MySQL"), "{}", e[0]);
}

#[test]
fn components_without_a_database_refuse_one() {
    let e = errors(&Fixture::spec_yaml(
        "components:\n  blaze:\n    database:\n      external:\n        name: x\n",
    ));
    assert_eq!(reasons(&e), ["DatabaseNotSupported"]);
}

#[test]
fn cloudnativepg_unavailable_says_what_to_do() {
    let mut f =
        Fixture::spec_yaml("components:\n  vfps:\n    database:\n      cloudNativePG: {}\n");
    f.cnpg_available = false;
    let e = errors(&f);
    assert_eq!(reasons(&e), ["CloudNativePgUnavailable"]);
    let msg = e[0].to_string();
    assert!(
        msg.contains("install the CloudNativePG operator") && msg.contains("database.external"),
        "{msg}"
    );
}

#[test]
fn env_collision_with_operator_settings() {
    let e = errors(&Fixture::spec_yaml(
        "components:\n  blaze:\n    env:\n      - name: OPENID_PROVIDER_URL\n        value: x\n      - name: BASE_URL\n        value: other\n",
    ));
    // The first collides only once OIDC is set; BASE_URL always.
    assert_eq!(reasons(&e), ["EnvCollision"]);
    assert!(e[0].to_string().contains("BASE_URL"));
    let e = errors(&Fixture::spec_yaml(
        "components:\n  vfps:\n    env:\n      - name: PGPASSWORD\n        value: x\n    database:\n      cloudNativePG: {}\n",
    ));
    assert_eq!(reasons(&e), ["EnvCollision"]);
}

#[test]
fn gateway_and_blaze_under_oidc_are_refused_naming_both_and_what_to_do() {
    let gateway_site = "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: k}, pseudonymization: {namespace: p}}\n  gpas:\n    database:\n      external:\n        name: t\n  fhirGateway: {}\n";
    let e = errors(&Fixture::spec_yaml(&format!(
        "{gateway_site}auth:\n  oidc:\n    issuerUrl: https://login.example.org\n    clientId: c\n"
    )));
    assert_eq!(reasons(&e), ["UnsupportedCombination"]);
    assert_eq!(e[0].component(), Some(common::component("fhir-gateway")));
    let msg = e[0].to_string();
    for needle in [
        "spec.components.fhirGateway",
        "spec.components.blaze",
        "spec.auth.oidc",
        "remove spec.auth.oidc",
        "disable spec.components.fhirGateway",
    ] {
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    // Without OIDC the same site is fine.
    assert!(catalog::validate(&Fixture::spec_yaml(gateway_site).input()).is_ok());
}

#[test]
fn vfps_runs_one_replica_because_it_migrates_at_start() {
    let e = errors(&Fixture::spec_yaml(
        "components:\n  vfps:\n    replicas: 2\n    database:\n      cloudNativePG: {}\n",
    ));
    assert_eq!(reasons(&e), ["TooManyReplicas"]);
    assert!(e[0].to_string().contains("migrates"), "{}", e[0]);
}

#[test]
fn too_many_replicas_and_storage_where_none_is_kept() {
    let e = errors(&Fixture::spec_yaml(
        "components:\n  blaze:\n    replicas: 2\n",
    ));
    assert_eq!(reasons(&e), ["TooManyReplicas"]);
    let e = errors(&Fixture::spec_yaml(
        "components:\n  blaze: {}\n  flare:\n    storage:\n      size: 1Gi\n",
    ));
    assert_eq!(reasons(&e), ["StorageNotSupported"]);
}

#[test]
fn site_names_that_cannot_name_objects() {
    let mut f = Fixture::spec_yaml("components:\n  blaze: {}\n");
    f.name = "a-very-long-site-name-that-does-not-fit".into();
    assert_eq!(reasons(&errors(&f)), ["InvalidSiteName"]);
    f.name = "1erlangen".into();
    assert_eq!(reasons(&errors(&f)), ["InvalidSiteName"]);
}

#[test]
fn dqa_needs_a_database_to_read() {
    let e = errors(&Fixture::spec_yaml("components:\n  dqa: {}\n"));
    assert_eq!(reasons(&e), ["DependencyDisabled"]);
    assert!(
        e[0].to_string().contains("spec.components.i2b2")
            && e[0].to_string().contains("spec.components.fhirGateway")
    );
    let e = errors(&Fixture::spec_yaml(
        "components:\n  blaze: {}\n  fhirPseudonymizer: {keysSecretRef: {name: fhir-pseudonymizer-keys}, pseudonymization: {namespace: patient-identifiers}}\n  gpas:\n    database:\n      external:\n        name: t\n  fhirGateway: {}\n  dqa: {}\n",
    ));
    assert_eq!(reasons(&e), ["DatabaseRequired"]);
    assert_eq!(e[0].component(), Some(common::component("fhir-gateway")));
}

#[test]
fn mainzelliste_refuses_env_that_makes_its_entrypoint_write_read_only_files() {
    for name in [
        "TOMCAT_REVERSEPROXY_FQDN",
        "RELAXED_QUERY_CHARS",
        "DEPLOYMENT_CONTEXT",
    ] {
        let e = errors(&Fixture::spec_yaml(&format!(
            "components:\n  mainzelliste:\n    apiKeySecretRef:\n      name: ml-api\n      key: api-key\n    configSecretRef:\n      name: ml-config\n      key: mainzelliste.docker.conf\n    database:\n      cloudNativePG: {{}}\n    env:\n      - name: {name}\n        value: x\n"
        )));
        assert_eq!(reasons(&e), ["UnsupportedCombination"], "{name}");
        assert_eq!(e[0].component(), Some(common::component("mainzelliste")));
        let msg = e[0].to_string();
        assert!(
            msg.starts_with("spec.components.mainzelliste: env ")
                && msg.contains(name)
                && msg.contains("read-only"),
            "{msg}"
        );
    }
}

#[test]
fn validate_reports_every_problem_at_once() {
    let mut f = Fixture::spec_yaml(
        "components:\n  flare: {}\n  vfps:\n    database:\n      cloudNativePG: {}\n  gpas:\n    database:\n      external:\n        name: t\n    env:\n      - name: WF_NO_ADMIN\n        value: x\n  gics:\n    database:\n      cloudNativePG: {}\n  mainzelliste:\n    apiKeySecretRef:\n      name: ml-api\n      key: api-key\n    configSecretRef:\n      name: ml-config\n      key: mainzelliste.docker.conf\n  torch:\n    replicas: 2\n  dqa: {}\n",
    );
    f.cnpg_available = false;
    f.release.images.remove("flare");
    let e = errors(&f);
    let mut r = reasons(&e);
    r.sort_unstable();
    r.dedup();
    assert_eq!(
        r,
        [
            "CloudNativePgUnavailable",
            "DatabaseNotSupported",
            "DatabaseRequired",
            "DependencyDisabled",
            "EnvCollision",
            "ImageMissing",
            "TooManyReplicas",
        ]
    );
    // flare (blaze), torch (blaze), dqa (i2b2 or gateway).
    assert_eq!(
        e.iter()
            .filter(|e| e.reason() == "DependencyDisabled")
            .count(),
        3
    );
}

#[test]
fn every_variant_has_a_distinct_camel_case_reason() {
    let samples = [
        CatalogError::Serialize("x".into()),
        CatalogError::InvalidSiteName {
            name: "x".into(),
            why: "y".into(),
        },
        CatalogError::StorageNotSupported {
            component: common::component("flare"),
            field: "flare",
        },
    ];
    for e in samples {
        let r = e.reason();
        assert!(
            r.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && !r.contains(['-', '_', ' ']),
            "{r}"
        );
    }
}

#[test]
fn ohdsi_with_oidc_needs_a_public_host_for_the_login_callback() {
    let e = errors(&Fixture::spec_yaml(
        "components:\n  ohdsi:\n    database:\n      external:\n        name: omop\nauth:\n  oidc:\n    issuerUrl: https://login.example.org\n    clientId: atlas\n",
    ));
    assert_eq!(reasons(&e), ["UnsupportedCombination"]);
    assert_eq!(e[0].component(), Some(common::component("ohdsi")));
    let msg = e[0].to_string();
    assert!(
        msg.starts_with("spec.components.ohdsi: ") && msg.contains("spec.ingress"),
        "{msg}"
    );
}

#[test]
fn an_override_below_the_presets_other_half_is_refused_with_the_field() {
    // The CRD's rule sees only the overrides; merged with the large preset's 8Gi memory request
    // the 1Gi limit would make an invalid pod.
    let e = errors(&Fixture::spec_yaml(
        "components:\n  blaze:\n    resources: large\n    resourceOverrides:\n      limits:\n        memory: 1Gi\n",
    ));
    assert_eq!(reasons(&e), ["LimitBelowRequest"]);
    let msg = e[0].to_string();
    assert!(
        msg.starts_with("spec.components.blaze.resourceOverrides: the memory limit 1Gi would be below the memory request"),
        "{msg}"
    );
    // Equal is fine, in any notation.
    let ok = Fixture::spec_yaml(
        "components:\n  blaze:\n    resourceOverrides:\n      requests:\n        cpu: 250m\n        memory: 256Mi\n      limits:\n        cpu: \"0.25\"\n        memory: 0.25Gi\n",
    );
    catalog::validate(&ok.input()).expect("limit equal to request");
}

/// What the catalogue refuses, the controller reports in Stalled and in an Event and `render`
/// prints: every message names the field to change.
#[test]
fn every_catalogue_error_names_its_field() {
    let mut cases: Vec<Fixture> = [
        "components:\n  flare: {}\n",
        "components:\n  vfps: {}\n",
        "components:\n  blaze:\n    database:\n      external:\n        name: x\n",
        "components:\n  blaze: {}\n  flare:\n    storage:\n      size: 1Gi\n",
        "components:\n  blaze: {}\n  flare: {}\n  torch:\n    replicas: 2\n",
        "components:\n  blaze:\n    env:\n      - name: BASE_URL\n        value: other\n",
        "components:\n  blaze:\n    resources: large\n    resourceOverrides:\n      limits:\n        memory: 1Gi\n",
        "components:\n  vfps:\n    database:\n      cloudNativePG: {}\n",
    ]
    .into_iter()
    .map(Fixture::spec_yaml)
    .collect();
    let mut no_cnpg =
        Fixture::spec_yaml("components:\n  vfps:\n    database:\n      cloudNativePG: {}\n");
    no_cnpg.cnpg_available = false;
    cases.push(no_cnpg);
    let mut no_image = Fixture::spec_yaml("components:\n  blaze: {}\n");
    no_image.release.images.remove("blaze");
    cases.push(no_image);
    cases.push(Fixture::spec_yaml(
        "components:\n  ohdsi:\n    database:\n      external:\n        name: omop\nauth:\n  oidc:\n    issuerUrl: https://login.example.org\n    clientId: atlas\n",
    ));
    let mut bad_name = Fixture::spec_yaml("components:\n  blaze: {}\n");
    bad_name.name = "1erlangen".into();
    cases.push(bad_name);
    let mut seen = std::collections::BTreeSet::new();
    for f in &cases {
        for e in catalog::validate(&f.input()).err().unwrap_or_default() {
            let msg = e.to_string();
            assert!(
                msg.starts_with("spec.") || msg.starts_with("metadata.name "),
                "{}: {msg}",
                e.reason()
            );
            seen.insert(e.reason());
        }
    }
    for reason in [
        "DependencyDisabled",
        "DatabaseRequired",
        "DatabaseNotSupported",
        "StorageNotSupported",
        "TooManyReplicas",
        "EnvCollision",
        "LimitBelowRequest",
        "CloudNativePgUnavailable",
        "ImageMissing",
        "InvalidSiteName",
        "UnsupportedCombination",
    ] {
        assert!(seen.contains(reason), "{reason} not produced: {seen:?}");
    }
}
