use super::*;
use crate::api::{ComponentImage, DizSiteStatus};
use crate::catalog::SITE_LABEL;

fn endpoint(extra: serde_json::Value) -> FeasibilityEndpoint {
    let mut spec = json!({
        "siteRef": {"name": "erlangen"},
        "portal": {
            "dsfFhirUrl": "https://dsf.example/fhir",
            "organizationIdentifier": "uk-erlangen.de",
            "clientCertificateSecretRef": {"name": "dsf-cert"}
        }
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1",
        "kind": "FeasibilityEndpoint",
        "metadata": {"name": "erlangen", "namespace": "diz-erlangen", "uid": "ep-uid", "generation": 3},
        "spec": spec,
    }))
    .expect("endpoint")
}

fn site(components: serde_json::Value, release: Option<&str>) -> DizSite {
    let mut s: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1",
        "kind": "DizSite",
        "metadata": {"name": "erlangen", "namespace": "diz-erlangen", "uid": "site-uid"},
        "spec": {"siteId": "erlangen", "release": {"channel": "stable"}, "components": components},
    }))
    .expect("site");
    s.status = Some(DizSiteStatus {
        current_release: release.map(str::to_string),
        ..DizSiteStatus::default()
    });
    s
}

const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

fn release(with_gate: bool) -> ComponentRelease {
    let mut components = json!({"flare": {"repository": "ghcr.io/medizininformatik-initiative/flare", "digest": DIGEST, "version": "1"}});
    if with_gate {
        components[build::GATE_IMAGE_KEY] = json!({"repository": "ghcr.io/miracum/miracolix-operator", "digest": DIGEST, "version": "1"});
    }
    serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1",
        "kind": "ComponentRelease",
        "metadata": {"name": "r1"},
        "spec": {"version": "1", "channel": "stable", "components": components},
    }))
    .expect("release")
}

fn reason(p: &Plan) -> &'static str {
    match p {
        Plan::Stall { reason, .. } | Plan::Wait { reason, .. } => reason,
        Plan::Deploy { .. } => "Deploy",
    }
}

#[test]
fn plan_rules_in_order() {
    let flare = json!({"blaze": {}, "flare": {}});
    let rows: Vec<(&str, FeasibilityEndpoint, Observed, &str)> = vec![
        (
            "no site",
            endpoint(json!({})),
            Observed::default(),
            reasons::SITE_NOT_FOUND,
        ),
        (
            "cql executor",
            endpoint(json!({"dataSource": {"executor": "cql"}})),
            Observed {
                site: Some(site(flare.clone(), Some("r1"))),
                release: Some(release(true)),
            },
            reasons::EXECUTOR_NOT_SUPPORTED,
        ),
        (
            "site without flare",
            endpoint(json!({})),
            Observed {
                site: Some(site(json!({"blaze": {}}), Some("r1"))),
                release: Some(release(true)),
            },
            reasons::EXECUTOR_NOT_RUN,
        ),
        (
            "flare disabled",
            endpoint(json!({})),
            Observed {
                site: Some(site(
                    json!({"blaze": {}, "flare": {"enabled": false}}),
                    Some("r1"),
                )),
                release: Some(release(true)),
            },
            reasons::EXECUTOR_NOT_RUN,
        ),
        (
            "budget below epsilon",
            endpoint(json!({"privacy": {"epsilon": 0.5, "dailyEpsilonBudget": 0.25}})),
            Observed {
                site: Some(site(flare.clone(), Some("r1"))),
                release: Some(release(true)),
            },
            reasons::PRIVACY_INVALID,
        ),
        (
            "site not deployed",
            endpoint(json!({})),
            Observed {
                site: Some(site(flare.clone(), None)),
                release: None,
            },
            reasons::SITE_NOT_DEPLOYED,
        ),
        (
            "release without gate",
            endpoint(json!({})),
            Observed {
                site: Some(site(flare.clone(), Some("r1"))),
                release: Some(release(false)),
            },
            reasons::GATE_IMAGE_MISSING,
        ),
        (
            "release not found",
            endpoint(json!({})),
            Observed {
                site: Some(site(flare.clone(), Some("r1"))),
                release: None,
            },
            reasons::GATE_IMAGE_MISSING,
        ),
        (
            "deploy",
            endpoint(json!({})),
            Observed {
                site: Some(site(flare, Some("r1"))),
                release: Some(release(true)),
            },
            "Deploy",
        ),
    ];
    for (name, ep, observed, want) in rows {
        let p = plan(&ep, &observed);
        assert_eq!(reason(&p), want, "{name}: {p:?}");
        if let Plan::Stall { message, .. } = &p {
            assert!(
                message.contains("spec.") || message.contains("release"),
                "{name}: {message}"
            );
        }
    }
}

#[test]
fn conditions_follow_the_plan_and_the_gate() {
    let stall = Plan::Stall {
        reason: reasons::SITE_NOT_FOUND,
        message: "m".into(),
    };
    let c = conditions_for(&stall, false);
    assert_eq!(
        c.iter().map(|d| (d.type_, d.status)).collect::<Vec<_>>(),
        [(READY, "False"), (RECONCILING, "False"), (STALLED, "True")]
    );
    let wait = Plan::Wait {
        reason: reasons::SITE_NOT_DEPLOYED,
        message: "m".into(),
    };
    assert_eq!(conditions_for(&wait, false)[1].status, "True");
    let deploy = Plan::Deploy {
        site_name: "erlangen".into(),
        image: ComponentImage {
            repository: "r".into(),
            digest: DIGEST.into(),
            version: "1".into(),
        },
    };
    let starting = conditions_for(&deploy, false);
    assert_eq!(
        (starting[0].status, starting[0].reason.as_str()),
        ("False", reasons::GATE_STARTING)
    );
    let ready = conditions_for(&deploy, true);
    assert_eq!(
        (ready[0].status, ready[0].reason.as_str()),
        ("True", reasons::READY_REASON)
    );
    assert_eq!(ready[2].status, "False");
}

#[test]
fn gate_objects_are_restricted_owned_and_not_site_labelled() {
    let ep = endpoint(json!({"privacy": {"epsilon": 0.25, "suppressBelow": 10}}));
    let image = ComponentImage {
        repository: "ghcr.io/miracum/miracolix-operator".into(),
        digest: DIGEST.into(),
        version: "1".into(),
    };
    let children = build::build(&build::GateInput {
        endpoint: &ep,
        site_name: "erlangen",
        image: &image,
    })
    .expect("build");
    let kinds: Vec<&str> = children.iter().map(|c| c.resource.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "NetworkPolicy"
        ]
    );
    for c in &children {
        let labels = c.object.metadata.labels.clone().unwrap_or_default();
        assert!(
            !labels.contains_key(SITE_LABEL),
            "{}: the site controller would delete it",
            c.resource.kind
        );
        let owned = c
            .object
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o[0].uid == "ep-uid");
        // The audit log outlives the endpoint.
        assert_eq!(
            owned,
            c.resource.kind != "PersistentVolumeClaim",
            "{}",
            c.resource.kind
        );
    }
    let d: Deployment =
        serde_json::from_value(serde_json::to_value(&children[2].object).expect("json"))
            .expect("deployment");
    let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(format!("ghcr.io/miracum/miracolix-operator@{DIGEST}").as_str())
    );
    let sc = c.security_context.clone().expect("security");
    assert_eq!(
        (
            sc.run_as_user,
            sc.read_only_root_filesystem,
            sc.allow_privilege_escalation
        ),
        (Some(65532), Some(true), Some(false))
    );
    let env: std::collections::BTreeMap<_, _> = c
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert_eq!(env["GATE_EPSILON"], "0.25");
    assert_eq!(env["GATE_SUPPRESS_BELOW"], "10");
    assert_eq!(env["GATE_EXECUTOR_URL"], "http://erlangen-flare:8080");
    assert_eq!(pod.automount_service_account_token, Some(false));
}
