use super::*;
use crate::api::{ComponentImage, DizSiteStatus};
use crate::catalog::SITE_LABEL;
use serde_json::json;

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

fn check(name: &str, ep: FeasibilityEndpoint, observed: Observed) -> &'static str {
    let p = plan(&ep, &observed);
    if let Plan::Stall { message, .. } = &p {
        assert!(
            message.contains("spec.") || message.contains("release"),
            "{name}: {message}"
        );
    }
    reason(&p)
}

fn on(components: serde_json::Value, current: Option<&str>, with_gate: Option<bool>) -> Observed {
    Observed {
        site: Some(site(components, current)),
        release: with_gate.map(release),
        floor: None,
    }
}

#[test]
fn looser_than_the_signed_floor_stalls_naming_each_field_stricter_is_allowed() {
    let floor = crate::api::PrivacyFloor {
        max_epsilon: Some(0.25),
        min_round_to: Some(20),
        min_suppress_below: Some(10),
        max_requests_per_hour: Some(100),
        max_daily_epsilon_budget: Some(10.0),
    };
    let mut observed = on(json!({"blaze": {}, "flare": {}}), Some("r1"), Some(true));
    observed.floor = Some(floor);
    // The defaults (ε 0.5, roundTo 10, suppressBelow 5, 999/h, budget 50) are looser everywhere.
    let p = plan(&endpoint(json!({})), &observed);
    let Plan::Stall { reason, message } = &p else {
        panic!("{p:?}")
    };
    assert_eq!(*reason, reasons::PRIVACY_BELOW_FLOOR);
    for field in [
        "epsilon",
        "roundTo",
        "suppressBelow",
        "requestsPerHour",
        "dailyEpsilonBudget",
    ] {
        assert!(
            message.contains(&format!("spec.privacy.{field} ")),
            "{field}: {message}"
        );
    }
    // At the floor or stricter: deployed.
    let strict = endpoint(json!({"privacy": {
        "epsilon": 0.1, "roundTo": 20, "suppressBelow": 20, "requestsPerHour": 100, "dailyEpsilonBudget": 5.0
    }}));
    assert_eq!(reason_of(&plan(&strict, &observed)), "Deploy");
}

fn direct(host: &str) -> serde_json::Value {
    json!({
        "host": host,
        "serverCertificateSecretRef": {"name": "gate-tls"},
        "clientCaSecretRef": {"name": "broker-ca"},
        "allowedClients": ["broker.example.org", "backup-broker.example.org"],
    })
}

/// The site with an Ingress on `host` (class `nginx`) and its ingress controller in the
/// namespace labelled `ingress: yes`.
fn with_ingress(mut observed: Observed, host: &str) -> Observed {
    if let Some(site) = observed.site.as_mut() {
        site.spec.ingress = Some(
            serde_json::from_value(
                json!({"host": host, "className": "nginx", "tls": {"secretName": "t"}}),
            )
            .expect("ingress"),
        );
        site.spec.network_policy = Some(
            serde_json::from_value(json!({"ingressNamespaceLabels": {"ingress": "yes"}}))
                .expect("network policy"),
        );
    }
    observed
}

fn reason_of(p: &Plan) -> &'static str {
    reason(p)
}

/// One row per rule of `plan`, in its order.
#[test]
fn plan_rules_in_order() {
    let flare = || json!({"blaze": {}, "flare": {}});
    assert_eq!(
        check("no site", endpoint(json!({})), Observed::default()),
        reasons::SITE_NOT_FOUND
    );
    assert_eq!(
        check(
            "cql executor",
            endpoint(json!({"dataSource": {"executor": "cql"}})),
            on(flare(), Some("r1"), Some(true))
        ),
        reasons::EXECUTOR_NOT_SUPPORTED
    );
    assert_eq!(
        check(
            "site without flare",
            endpoint(json!({})),
            on(json!({"blaze": {}}), Some("r1"), Some(true))
        ),
        reasons::EXECUTOR_NOT_RUN
    );
    assert_eq!(
        check(
            "flare disabled",
            endpoint(json!({})),
            on(
                json!({"blaze": {}, "flare": {"enabled": false}}),
                Some("r1"),
                Some(true)
            )
        ),
        reasons::EXECUTOR_NOT_RUN
    );
    assert_eq!(
        check(
            "budget below epsilon",
            endpoint(json!({"privacy": {"epsilon": 0.5, "dailyEpsilonBudget": 0.25}})),
            on(flare(), Some("r1"), Some(true))
        ),
        reasons::PRIVACY_INVALID
    );
    assert_eq!(
        check(
            "direct host is the site's ingress host",
            endpoint(json!({"direct": direct("diz.uk-erlangen.de")})),
            with_ingress(on(flare(), Some("r1"), Some(true)), "diz.uk-erlangen.de")
        ),
        reasons::DIRECT_HOST_CONFLICT
    );
    assert_eq!(
        check(
            "direct host of its own",
            endpoint(json!({"direct": direct("feasibility.uk-erlangen.de")})),
            with_ingress(on(flare(), Some("r1"), Some(true)), "diz.uk-erlangen.de")
        ),
        "Deploy"
    );
    assert_eq!(
        check(
            "site not deployed",
            endpoint(json!({})),
            on(flare(), None, None)
        ),
        reasons::SITE_NOT_DEPLOYED
    );
    assert_eq!(
        check(
            "release without gate",
            endpoint(json!({})),
            on(flare(), Some("r1"), Some(false))
        ),
        reasons::GATE_IMAGE_MISSING
    );
    assert_eq!(
        check(
            "release not found",
            endpoint(json!({})),
            on(flare(), Some("r1"), None)
        ),
        reasons::GATE_IMAGE_MISSING
    );
    assert_eq!(
        check(
            "deploy",
            endpoint(json!({})),
            on(flare(), Some("r1"), Some(true))
        ),
        "Deploy"
    );
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
    assert_eq!(c[2].reason, reasons::SITE_NOT_FOUND);
    let wait = Plan::Wait {
        reason: reasons::SITE_NOT_DEPLOYED,
        message: "m".into(),
    };
    let waiting = conditions_for(&wait, false);
    assert_eq!(
        (waiting[1].status, waiting[1].reason.as_str()),
        ("True", reasons::SITE_NOT_DEPLOYED)
    );
    let deploy = Plan::Deploy {
        site_name: "erlangen".into(),
        image: ComponentImage {
            repository: "r".into(),
            digest: DIGEST.into(),
            version: "1".into(),
        },
        site_ingress: build::SiteIngress::default(),
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
        site_ingress: &build::SiteIngress::default(),
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

    // The container runs the operator image's `gate` subcommand, and every setting the
    // Deployment passes is one that subcommand knows: parse args plus env (as the flags clap
    // reads them from) with the operator's own command line, not the process environment.
    assert_eq!(c.command, None, "the image's entrypoint is the binary");
    let mut argv = vec!["miracolix-operator".to_string()];
    argv.extend(c.args.clone().unwrap_or_default());
    for (name, value) in &env {
        let flag = name
            .strip_prefix("GATE_")
            .unwrap_or_else(|| panic!("env {name} is not a gate setting"))
            .to_lowercase()
            .replace('_', "-");
        argv.push(format!("--{flag}={value}"));
    }
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?} is not a gate command line: {e}"));
    let crate::cli::Command::Gate(args) = cli.command else {
        panic!("{argv:?} does not run the gate");
    };
    assert_eq!(args.executor_url, "http://erlangen-flare:8080");
    assert_eq!(args.epsilon, 0.25);
}

#[test]
fn direct_mode_adds_the_mtls_listener_a_passthrough_ingress_and_admits_only_the_ingress_controller()
{
    let ep = endpoint(json!({"direct": direct("feasibility.uk-erlangen.de")}));
    let observed = with_ingress(
        on(json!({"blaze": {}, "flare": {}}), Some("r1"), Some(true)),
        "diz.uk-erlangen.de",
    );
    let Plan::Deploy {
        site_name,
        image,
        site_ingress,
    } = plan(&ep, &observed)
    else {
        panic!("not deployed")
    };
    let children = build::build(&build::GateInput {
        endpoint: &ep,
        site_name: &site_name,
        image: &image,
        site_ingress: &site_ingress,
    })
    .expect("build");
    let by_kind = |kind: &str| -> serde_json::Value {
        let c = children
            .iter()
            .find(|c| c.resource.kind == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        serde_json::to_value(&c.object).expect("json")
    };

    // The Ingress: the host, TLS passed through to the gate's https port, the site's class.
    let ingress = by_kind("Ingress");
    assert_eq!(
        ingress["metadata"]["annotations"][build::SSL_PASSTHROUGH],
        "true"
    );
    assert_eq!(ingress["metadata"]["ownerReferences"][0]["uid"], "ep-uid");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "feasibility.uk-erlangen.de");
    assert_eq!(
        rule["http"]["paths"][0]["backend"]["service"],
        json!({"name": "erlangen-gate", "port": {"name": "https"}})
    );
    assert!(
        ingress["spec"].get("tls").is_none(),
        "the ingress holds no certificate"
    );

    // The Service has the port the Ingress names.
    let service = by_kind("Service");
    let ports: Vec<(&str, i64)> = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or(""),
                p["port"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert!(ports.contains(&("https", 8443)), "{ports:?}");

    // The NetworkPolicy: 8443 from the ingress controller's namespace (the site's labels), 8080
    // still only from labelled pods.
    let policy = by_kind("NetworkPolicy");
    let ingress_rules = policy["spec"]["ingress"].as_array().expect("rules");
    assert_eq!(ingress_rules.len(), 2, "{ingress_rules:?}");
    assert_eq!(
        ingress_rules[1],
        json!({
            "from": [{"namespaceSelector": {"matchLabels": {"ingress": "yes"}}}],
            "ports": [{"port": 8443, "protocol": "TCP"}],
        })
    );
    assert_eq!(
        ingress_rules[0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );

    // The pod: the two Secrets mounted, the mTLS settings, and callers.json naming the clients.
    let d: Deployment = serde_json::from_value(by_kind("Deployment")).expect("deployment");
    let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
    let secrets: Vec<String> = pod
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.secret.and_then(|s| s.secret_name))
        .collect();
    assert_eq!(
        secrets,
        ["erlangen-gate-dsf-token", "gate-tls", "broker-ca"]
    );
    let env: std::collections::BTreeMap<_, _> = pod.containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert_eq!(env["GATE_TLS_CERT"], "/etc/miracolix-gate/tls/tls.crt");
    assert_eq!(env["GATE_TLS_KEY"], "/etc/miracolix-gate/tls/tls.key");
    assert_eq!(
        env["GATE_CLIENT_CA"],
        "/etc/miracolix-gate/client-ca/ca.crt"
    );
    // Every setting is one the gate's command line knows, and it starts the mTLS listener.
    let mut argv = vec!["miracolix-operator".to_string(), "gate".to_string()];
    for (name, value) in &env {
        let flag = name
            .trim_start_matches("GATE_")
            .to_lowercase()
            .replace('_', "-");
        argv.push(format!("--{flag}={value}"));
    }
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?} is not a gate command line: {e}"));
    let crate::cli::Command::Gate(args) = cli.command else {
        panic!("not the gate")
    };
    assert_eq!(args.mtls_listen.port(), 8443);
    assert!(args.tls_cert.is_some() && args.tls_key.is_some() && args.client_ca.is_some());
    let config = by_kind("ConfigMap");
    let callers: serde_json::Value =
        serde_json::from_str(config["data"]["callers.json"].as_str().expect("callers"))
            .expect("json");
    assert_eq!(
        callers["clientCertificates"]["allowed"],
        json!(["broker.example.org", "backup-broker.example.org"])
    );
    // The gate itself accepts that config.
    let parsed: miracolix_gate::auth::CallersConfig =
        serde_json::from_value(callers).expect("the gate's callers config");
    assert_eq!(parsed.client_certificates.map(|c| c.allowed.len()), Some(2));

    // Without direct mode none of it.
    let plain = endpoint(json!({}));
    let children = build::build(&build::GateInput {
        endpoint: &plain,
        site_name: "erlangen",
        image: &image,
        site_ingress: &site_ingress,
    })
    .expect("build");
    assert!(children.iter().all(|c| c.resource.kind != "Ingress"));
    let text = serde_json::to_string(&children.iter().map(|c| &c.object).collect::<Vec<_>>())
        .expect("json");
    assert!(
        !text.contains("8443") && !text.contains("GATE_TLS"),
        "{text}"
    );
}

#[test]
fn a_site_change_reconciles_the_endpoints_that_name_it_in_its_namespace() {
    let named = |name: &str, ns: &str, site: &str| {
        let mut e = endpoint(json!({"siteRef": {"name": site}}));
        e.metadata.name = Some(name.into());
        e.metadata.namespace = Some(ns.into());
        Arc::new(e)
    };
    let endpoints = [
        named("a", "diz-erlangen", "erlangen"),
        named("b", "diz-erlangen", "erlangen"),
        named("c", "diz-erlangen", "other"),
        named("d", "elsewhere", "erlangen"),
    ];
    let site = site(json!({"flare": {}}), None);
    let hit: Vec<String> = endpoints_of_site(&endpoints, &site)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(hit, ["a", "b"]);
}

#[test]
fn endpoints_of_one_name_in_two_namespaces_back_off_apart() {
    let a = endpoint(json!({}));
    let mut b = a.clone();
    b.metadata.namespace = Some("diz-marburg".into());
    assert_eq!(backoff_key(&a), "feas/diz-erlangen/erlangen");
    assert_ne!(backoff_key(&a), backoff_key(&b));
    // One failing does not lengthen the other's wait.
    let backoff = crate::controller::Backoff::default();
    assert_eq!(backoff.next(&backoff_key(&a)).as_secs(), 1);
    assert_eq!(backoff.next(&backoff_key(&a)).as_secs(), 2);
    assert_eq!(backoff.next(&backoff_key(&b)).as_secs(), 1);
}
