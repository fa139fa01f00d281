use super::*;
use crate::api::DizSiteStatus;
use crate::catalog::SITE_LABEL;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

fn inbox(extra: serde_json::Value) -> ProposalInbox {
    let mut spec = json!({
        "siteRef": {"name": "erlangen"},
        "uac": {
            "members": [
                {"name": "A", "email": "a@uk-erlangen.de"},
                {"name": "B", "email": "b@uk-erlangen.de"}
            ],
            "quorum": 2,
            "reviewDeadline": "336h"
        },
        "diz": {
            "members": [{"name": "D", "email": "diz@uk-erlangen.de"}],
            "oidcGroup": "diz-staff"
        },
        "decisions": {
            "dsfFhirUrl": "https://dsf.example/fhir",
            "organizationIdentifier": "forschen-fuer-gesundheit.de"
        },
        "centralKeysSecretRef": {"name": "inbox-central-keys"},
        "decisionKeySecretRef": {"name": "inbox-decision-key", "key": "key.pem"},
        "sessionSecretRef": {"name": "inbox-session", "key": "secret"},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1",
        "kind": "ProposalInbox",
        "metadata": {"name": "erlangen", "namespace": "diz-erlangen", "uid": "inbox-uid", "generation": 2},
        "spec": spec,
    }))
    .expect("inbox")
}

fn site(extra: serde_json::Value, release: Option<&str>) -> DizSite {
    let mut spec = json!({"siteId": "erlangen", "release": {"channel": "stable"}, "components": {"blaze": {}}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    let mut s: DizSite = serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1",
        "kind": "DizSite",
        "metadata": {"name": "erlangen", "namespace": "diz-erlangen", "uid": "site-uid"},
        "spec": spec,
    }))
    .expect("site");
    s.status = Some(DizSiteStatus {
        current_release: release.map(str::to_string),
        ..DizSiteStatus::default()
    });
    s
}

const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

fn release(with_inbox: bool) -> ComponentRelease {
    let mut components =
        json!({"blaze": {"repository": "ghcr.io/samply/blaze", "digest": DIGEST, "version": "1"}});
    if with_inbox {
        components[build::INBOX_IMAGE_KEY] = json!({"repository": "ghcr.io/miracum/miracolix-operator", "digest": DIGEST, "version": "1"});
    }
    serde_json::from_value(json!({
        "apiVersion": "diz.miracum.org/v1alpha1",
        "kind": "ComponentRelease",
        "metadata": {"name": "r1"},
        "spec": {"version": "1", "channel": "stable", "components": components},
    }))
    .expect("release")
}

fn ingress() -> serde_json::Value {
    json!({"host": "diz.uk-erlangen.de", "className": "nginx", "tls": {"issuerRef": {"name": "letsencrypt"}}})
}

fn site_oidc(secret: bool) -> serde_json::Value {
    let mut o = json!({"issuerUrl": "https://login.uk-erlangen.de/realms/diz", "clientId": "diz"});
    if secret {
        o["clientSecretRef"] = json!({"name": "oidc-client", "key": "client-secret"});
    }
    json!({"oidc": o})
}

fn own_oidc() -> serde_json::Value {
    json!({"oidc": {
        "issuerUrl": "https://login.uk-erlangen.de/realms/diz",
        "clientId": "diz-inbox",
        "clientSecretRef": {"name": "inbox-oidc", "key": "client-secret"}
    }})
}

fn on(site_extra: serde_json::Value, current: Option<&str>, with_inbox: Option<bool>) -> Observed {
    Observed {
        site: Some(site(site_extra, current)),
        release: with_inbox.map(release),
        cnpg_available: true,
    }
}

/// The reason of a plan, checking that a stall's message names a field or the release.
fn reason(name: &str, p: &Plan) -> &'static str {
    match p {
        Plan::Stall { reason, message } => {
            assert!(
                message.contains("spec.") || message.contains("release"),
                "{name}: {message}"
            );
            reason
        }
        Plan::Wait { reason, .. } => reason,
        Plan::Deploy(_) => "Deploy",
    }
}

/// The reason of `plan` for one case; a stall or wait must name `field` in its message.
fn check(name: &str, ib: ProposalInbox, observed: Observed, field: &str) -> &'static str {
    let p = plan(&ib, &observed);
    if let Plan::Stall { message, .. } | Plan::Wait { message, .. } = &p {
        assert!(
            message.contains(field),
            "{name}: {message} should name {field}"
        );
    }
    reason(name, &p)
}

/// One row per rule of `plan`, in its order.
#[test]
fn plan_rules_in_order() {
    let full = || json!({"ingress": ingress(), "auth": site_oidc(true)});
    let no = || inbox(json!({}));
    assert_eq!(
        check("no site", no(), Observed::default(), "spec.siteRef"),
        reasons::SITE_NOT_FOUND
    );
    assert_eq!(
        check("no release yet", no(), on(full(), None, None), "erlangen"),
        reasons::SITE_NOT_DEPLOYED
    );
    assert_eq!(
        check(
            "release without the inbox",
            no(),
            on(full(), Some("r1"), Some(false)),
            "miracolix-inbox"
        ),
        reasons::INBOX_IMAGE_MISSING
    );
    assert_eq!(
        check(
            "release not found",
            no(),
            on(full(), Some("r1"), None),
            "miracolix-inbox"
        ),
        reasons::INBOX_IMAGE_MISSING
    );
    let cnpg = || inbox(json!({"database": {"cloudNativePG": {}}}));
    let mut without_cnpg = on(full(), Some("r1"), Some(true));
    without_cnpg.cnpg_available = false;
    assert_eq!(
        check(
            "a CloudNativePG database without CloudNativePG",
            cnpg(),
            without_cnpg,
            "spec.database.cloudNativePG"
        ),
        reasons::INBOX_DATABASE_UNAVAILABLE
    );
    assert_eq!(
        check(
            "a CloudNativePG database with CloudNativePG",
            cnpg(),
            on(full(), Some("r1"), Some(true)),
            ""
        ),
        "Deploy"
    );
    assert_eq!(
        check(
            "no login anywhere",
            no(),
            on(json!({"ingress": ingress()}), Some("r1"), Some(true)),
            "spec.auth.oidc"
        ),
        reasons::INBOX_LOGIN_MISSING
    );
    assert_eq!(
        check(
            "site login without a client secret",
            no(),
            on(
                json!({"ingress": ingress(), "auth": site_oidc(false)}),
                Some("r1"),
                Some(true)
            ),
            "clientSecretRef"
        ),
        reasons::INBOX_LOGIN_MISSING
    );
    assert_eq!(
        check(
            "no ingress",
            no(),
            on(json!({"auth": site_oidc(true)}), Some("r1"), Some(true)),
            "spec.ingress"
        ),
        reasons::INBOX_LOGIN_MISSING
    );
    assert_eq!(
        check(
            "the site's login",
            no(),
            on(full(), Some("r1"), Some(true)),
            ""
        ),
        "Deploy"
    );
    assert_eq!(
        check(
            "the inbox's own login, the site has none",
            inbox(own_oidc()),
            on(json!({"ingress": ingress()}), Some("r1"), Some(true)),
            ""
        ),
        "Deploy"
    );
}

fn deployable(ib: &ProposalInbox, site_extra: serde_json::Value) -> Deployable {
    match plan(ib, &on(site_extra, Some("r1"), Some(true))) {
        Plan::Deploy(d) => *d,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_inbox_s_own_login_wins_over_the_site_s() {
    let d = deployable(
        &inbox(own_oidc()),
        json!({"ingress": ingress(), "auth": site_oidc(true)}),
    );
    assert_eq!(d.login.client_id, "diz-inbox");
    assert_eq!(d.login.client_secret.name, "inbox-oidc");
    let d = deployable(
        &inbox(json!({})),
        json!({"ingress": ingress(), "auth": site_oidc(true)}),
    );
    assert_eq!(d.login.client_id, "diz");
    assert!(d.login.field.contains("spec.auth.oidc.clientSecretRef"));
}

#[test]
fn conditions_follow_the_plan_and_the_pod() {
    let stall = Plan::Stall {
        reason: reasons::SITE_NOT_FOUND,
        message: "m".into(),
    };
    let c = conditions_for(&stall, &Health::Starting);
    assert_eq!(
        c.iter().map(|d| (d.type_, d.status)).collect::<Vec<_>>(),
        [(READY, "False"), (RECONCILING, "False"), (STALLED, "True")]
    );
    let wait = Plan::Wait {
        reason: reasons::SITE_NOT_DEPLOYED,
        message: "m".into(),
    };
    let waiting = conditions_for(&wait, &Health::Starting);
    assert_eq!(
        (waiting[1].status, waiting[1].reason.as_str()),
        ("True", reasons::SITE_NOT_DEPLOYED)
    );
    let deploy = plan(
        &inbox(json!({})),
        &on(
            json!({"ingress": ingress(), "auth": site_oidc(true)}),
            Some("r1"),
            Some(true),
        ),
    );
    let starting = conditions_for(&deploy, &Health::Starting);
    assert_eq!(
        (
            starting[0].status,
            starting[1].status,
            starting[0].reason.as_str()
        ),
        ("False", "True", reasons::INBOX_STARTING)
    );
    let missing = conditions_for(
        &deploy,
        &Health::SecretMissing("spec.sessionSecretRef".into(), "inbox-session".into()),
    );
    assert_eq!(
        (
            missing[0].status,
            missing[2].status,
            missing[2].reason.as_str()
        ),
        ("False", "True", reasons::INBOX_SECRET_MISSING)
    );
    assert!(
        missing[2].message.contains("spec.sessionSecretRef"),
        "{}",
        missing[2].message
    );
    let ready = conditions_for(&deploy, &Health::Available);
    assert_eq!(
        (ready[0].status, ready[0].reason.as_str(), ready[2].status),
        ("True", reasons::READY_REASON, "False")
    );
}

fn failed_mount(pod: &str, note: &str) -> KubeEvent {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{pod}.failedmount"), "namespace": "diz-erlangen"},
        "eventTime": "2026-11-29T10:00:00.000000Z",
        "reason": "FailedMount", "type": "Warning", "note": note,
        "regarding": {"kind": "Pod", "name": pod, "namespace": "diz-erlangen"},
    }))
    .expect("event")
}

#[test]
fn a_missing_secret_is_named_with_its_field_only_for_the_inbox_s_pods() {
    let ib = inbox(json!({}));
    let d = deployable(&ib, json!({"ingress": ingress(), "auth": site_oidc(true)}));
    let secrets = build::secrets(&ib, &d);
    let note = "MountVolume.SetUp failed for volume \"decision-key\" : secret \"inbox-decision-key\" not found";
    let ours = failed_mount("erlangen-inbox-5d8f9c-abcde", note);
    assert_eq!(
        missing_secret(std::slice::from_ref(&ours), "erlangen-inbox", &secrets),
        Some((
            "spec.decisionKeySecretRef".into(),
            "inbox-decision-key".into()
        ))
    );
    // Another pod's Event, or another Secret, is not the inbox's problem.
    let theirs = failed_mount("erlangen-blaze-0", note);
    assert_eq!(missing_secret(&[theirs], "erlangen-inbox", &secrets), None);
    let other = failed_mount(
        "erlangen-inbox-5d8f9c-abcde",
        "MountVolume.SetUp failed for volume \"x\" : secret \"unrelated\" not found",
    );
    assert_eq!(missing_secret(&[other], "erlangen-inbox", &secrets), None);
    // The site's client secret is named by the site's field.
    let site_secret = failed_mount(
        "erlangen-inbox-5d8f9c-abcde",
        "MountVolume.SetUp failed for volume \"oidc\" : secret \"oidc-client\" not found",
    );
    let (field, _) = missing_secret(&[site_secret], "erlangen-inbox", &secrets).expect("named");
    assert!(
        field.contains("DizSite \"erlangen\" spec.auth.oidc.clientSecretRef"),
        "{field}"
    );
}

#[test]
fn status_mirrors_the_summary_and_keeps_the_last_counts_when_it_cannot_be_read() {
    let s = Summary {
        counts: BTreeMap::from([
            ("DIZ_CHECK".to_string(), 2),
            ("UAC_APPROVED".to_string(), 1),
        ]),
        overdue: 1,
        last_decision_at: Some("2026-11-29T10:00:00Z".into()),
        notifications: vec![
            summary::NotificationSummary {
                name: "uac-mailbox".into(),
                failures: 2,
                last_error: Some("550 mailbox unavailable".into()),
            },
            summary::NotificationSummary {
                name: "ticket-system".into(),
                failures: 0,
                last_error: None,
            },
        ],
    };
    let read = status_for(
        &ProposalInboxStatus::default(),
        vec![],
        Some(3),
        Some(Ok(s)),
    );
    assert_eq!(read.counts["DIZ_CHECK"], 2);
    assert_eq!(read.overdue, Some(1));
    assert_eq!(
        read.last_decision_time.as_deref(),
        Some("2026-11-29T10:00:00Z")
    );
    assert_eq!(
        read.notifications.len(),
        1,
        "only failing notifications are listed"
    );
    assert_eq!(read.notifications[0].name, "uac-mailbox");
    assert_eq!(read.observed_generation, Some(3));
    let failed = status_for(
        &read,
        vec![],
        Some(3),
        Some(Err("connection refused".into())),
    );
    assert_eq!(failed.counts, read.counts);
    assert_eq!(failed.summary_error.as_deref(), Some("connection refused"));
    let again = status_for(&failed, vec![], Some(3), None);
    assert_eq!(again.summary_error, failed.summary_error);
}

fn objects(ib: &ProposalInbox, d: &Deployable) -> Vec<crate::catalog::Child> {
    build::build(ib, d).expect("build")
}

fn typed<K: serde::de::DeserializeOwned>(c: &crate::catalog::Child) -> K {
    serde_json::from_value(serde_json::to_value(&c.object).expect("json")).expect("typed")
}

#[test]
fn inbox_objects_are_restricted_owned_except_the_data_and_not_site_labelled() {
    let ib = inbox(json!({
        "notifications": [
            {"name": "uac-mailbox", "email": "uac@uk-erlangen.de", "events": ["ProposalReceived"]},
            {"name": "tickets", "webhook": {"url": "https://tickets.example/hook", "tokenSecretRef": {"name": "ticket-webhook", "key": "token"}}}
        ],
        "smtp": {"host": "smtp.uk-erlangen.de", "from": "inbox@uk-erlangen.de", "credentialsSecretRef": {"name": "smtp-login"}},
        "storage": {"size": "2Gi", "storageClassName": "ceph-rbd"}
    }));
    let d = deployable(&ib, json!({"ingress": ingress(), "auth": site_oidc(true)}));
    let children = objects(&ib, &d);
    let kinds: Vec<&str> = children.iter().map(|c| c.resource.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "NetworkPolicy",
            "Ingress"
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
            .is_some_and(|o| o[0].uid == "inbox-uid");
        // The proposals and votes outlive the inbox.
        assert_eq!(
            owned,
            c.resource.kind != "PersistentVolumeClaim",
            "{}",
            c.resource.kind
        );
    }
    let pvc: k8s_openapi::api::core::v1::PersistentVolumeClaim = typed(&children[1]);
    let pvc_spec = pvc.spec.expect("spec");
    assert_eq!(pvc.metadata.name.as_deref(), Some("erlangen-inbox-data"));
    assert_eq!(pvc_spec.storage_class_name.as_deref(), Some("ceph-rbd"));

    let dep: Deployment = typed(&children[2]);
    let spec = dep.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("Recreate")
    );
    let pod = spec.template.spec.expect("pod");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let psc = pod.security_context.clone().expect("pod security");
    assert_eq!(
        (
            psc.run_as_non_root,
            psc.run_as_user,
            psc.seccomp_profile.map(|s| s.type_)
        ),
        (Some(true), Some(65532), Some("RuntimeDefault".to_string()))
    );
    let c = &pod.containers[0];
    assert_eq!(c.args.as_deref(), Some(&["inbox".to_string()][..]));
    assert_eq!(c.command, None, "the image's entrypoint is the binary");
    assert_eq!(
        c.image.as_deref(),
        Some(format!("ghcr.io/miracum/miracolix-operator@{DIGEST}").as_str())
    );
    let sc = c.security_context.clone().expect("security");
    assert_eq!(
        (
            sc.read_only_root_filesystem,
            sc.allow_privilege_escalation,
            sc.capabilities.and_then(|c| c.drop)
        ),
        (Some(true), Some(false), Some(vec!["ALL".to_string()]))
    );
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let port = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .map(|h| h.port.clone());
        assert_eq!(port, Some(IntOrString::String("ops".into())));
    }
    let env: BTreeMap<String, String> = c
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert_eq!(env["INBOX_LISTEN"], "0.0.0.0:8080");
    assert_eq!(env["INBOX_OPS_LISTEN"], "0.0.0.0:8081");
    assert_eq!(env["INBOX_CONFIG"], "/etc/miracolix-inbox/config.json");
    assert_eq!(
        env["INBOX_DATABASE"],
        "sqlite:///var/lib/miracolix-inbox/inbox.db"
    );
    assert_eq!(
        env["INBOX_CENTRAL_KEYS"],
        "/etc/miracolix-inbox/central-keys"
    );
    assert_eq!(
        env["INBOX_DECISION_KEY"],
        "/etc/miracolix-inbox/decision-key/key.pem"
    );
    assert_eq!(
        env["INBOX_SESSION_SECRET_FILE"],
        "/etc/miracolix-inbox/session/secret"
    );
    // The args and every INBOX_* setting form a command line the operator binary accepts as
    // `inbox` (each variable is its flag's `env`), with the values landing where meant.
    let mut argv = vec!["miracolix-operator".to_string()];
    argv.extend(c.args.clone().unwrap_or_default());
    for (name, value) in &env {
        let flag = name
            .strip_prefix("INBOX_")
            .unwrap_or_else(|| panic!("env {name} is not an inbox setting"))
            .to_lowercase()
            .replace('_', "-");
        argv.push(format!("--{flag}={value}"));
    }
    {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{argv:?} is not an inbox command line: {e}"));
        let crate::cli::Command::Inbox(args) = cli.command else {
            panic!("{argv:?} does not run the inbox");
        };
        assert_eq!(args.database, "sqlite:///var/lib/miracolix-inbox/inbox.db");
        assert_eq!(
            args.session_secret_file.to_str(),
            Some("/etc/miracolix-inbox/session/secret")
        );
    }

    // Every file the config names is where a volume puts it.
    let mounts: BTreeMap<String, String> = c
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.mount_path, m.name))
        .collect();
    let volumes: BTreeMap<String, k8s_openapi::api::core::v1::Volume> = pod
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    let file_of = |path: &str| -> (String, String) {
        let (dir, file) = path.rsplit_once('/').expect("a path");
        let volume = &volumes[&mounts[dir]];
        if let Some(s) = &volume.secret {
            let item = s
                .items
                .as_ref()
                .and_then(|i| i.iter().find(|i| i.path == file))
                .expect("item");
            return (s.secret_name.clone().unwrap_or_default(), item.key.clone());
        }
        let p = volume.projected.as_ref().expect("secret or projected");
        let s = p
            .sources
            .iter()
            .flatten()
            .filter_map(|s| s.secret.as_ref())
            .find(|s| s.items.iter().flatten().any(|i| i.path == file))
            .expect("projected item");
        (
            s.name.clone(),
            s.items.as_ref().expect("items")[0].key.clone(),
        )
    };
    assert_eq!(
        file_of(build::DECISION_KEY_FILE),
        ("inbox-decision-key".into(), "key.pem".into())
    );
    assert_eq!(
        file_of(build::SESSION_SECRET_FILE),
        ("inbox-session".into(), "secret".into())
    );
    assert_eq!(
        file_of(build::OIDC_CLIENT_SECRET_FILE),
        ("oidc-client".into(), "client-secret".into())
    );
    assert_eq!(
        file_of(build::SMTP_PASSWORD_FILE),
        ("smtp-login".into(), "password".into())
    );
    assert_eq!(
        file_of(&format!("{}/tickets", build::WEBHOOK_TOKEN_DIR)),
        ("ticket-webhook".into(), "token".into())
    );
    assert_eq!(mounts[build::CONFIG_FILE], "config");
    assert_eq!(mounts[build::DATA_DIR], "data");
    assert_eq!(
        volumes["data"]
            .persistent_volume_claim
            .as_ref()
            .map(|p| p.claim_name.as_str()),
        Some("erlangen-inbox-data")
    );

    // The config: the interface with the service.
    let cm: ConfigMap = typed(&children[0]);
    let text = cm.data.expect("data")["config.json"].clone();
    // What the service itself accepts at start (its parser refuses unknown fields, and its
    // validation e.g. an e-mail target without SMTP).
    let parsed = miracolix_inbox::config::InboxConfig::parse(text.as_bytes())
        .expect("the inbox accepts the controller's config.json");
    parsed.validate().expect("the inbox's validation");
    let cfg: serde_json::Value = serde_json::from_str(&text).expect("config json");
    assert_eq!(
        cfg,
        json!({
            "siteId": "erlangen",
            "inbox": "erlangen",
            "uac": {
                "members": [{"name": "A", "email": "a@uk-erlangen.de"}, {"name": "B", "email": "b@uk-erlangen.de"}],
                "oidcGroup": null, "quorum": 2, "reviewDeadlineSeconds": 1_209_600
            },
            // Who records the DIZ check: spec.diz as it is.
            "diz": {"members": [{"name": "D", "email": "diz@uk-erlangen.de"}], "oidcGroup": "diz-staff"},
            "decisions": {"url": "https://dsf.example/fhir", "organizationIdentifier": "forschen-fuer-gesundheit.de"},
            "notifications": [
                {"name": "uac-mailbox", "email": "uac@uk-erlangen.de", "webhook": null, "events": ["ProposalReceived"]},
                // No events listed in the spec: the service sends all of them.
                {"name": "tickets", "email": null, "webhook": {"url": "https://tickets.example/hook", "tokenFile": "/etc/miracolix-inbox/webhook-tokens/tickets"},
                 "events": []}
            ],
            "smtp": {"host": "smtp.uk-erlangen.de", "port": 587, "from": "inbox@uk-erlangen.de", "starttls": true,
                     "usernameFile": "/etc/miracolix-inbox/smtp/username", "passwordFile": "/etc/miracolix-inbox/smtp/password"},
            "oidc": {"issuerUrl": "https://login.uk-erlangen.de/realms/diz", "clientId": "diz",
                     "clientSecretFile": "/etc/miracolix-inbox/oidc/client-secret",
                     "redirectUrl": "https://diz.uk-erlangen.de/inbox/auth/callback", "groupsClaim": "groups"},
            "basePath": "/inbox"
        })
    );

    let np: NetworkPolicy = typed(&children[4]);
    let np = serde_json::to_value(np.spec.expect("spec")).expect("json");
    let ingress_rules = np["ingress"].as_array().expect("ingress");
    assert_eq!(ingress_rules[0]["ports"][0]["port"], 8080);
    assert_eq!(
        ingress_rules[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );
    assert_eq!(
        ingress_rules[0]["from"][1]["podSelector"]["matchLabels"]["diz.miracum.org/access-proposal-inbox"],
        "true"
    );
    assert_eq!(ingress_rules[1]["ports"][0]["port"], 8081);
    let egress_ports: Vec<i64> = np["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .flat_map(|r| r["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(
        egress_ports,
        [53, 53, 443, 587],
        "DNS, HTTPS, SMTP; no database configured"
    );

    let ing: Ingress = typed(&children[5]);
    assert_eq!(
        ing.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("cert-manager.io/cluster-issuer"))
            .map(String::as_str),
        Some("letsencrypt")
    );
    let ing = ing.spec.expect("spec");
    let tls = &ing.tls.expect("tls")[0];
    assert_eq!(tls.secret_name.as_deref(), Some("erlangen-inbox-tls"));
    let rule = &ing.rules.expect("rules")[0];
    assert_eq!(rule.host.as_deref(), Some("diz.uk-erlangen.de"));
    let path = &rule.http.as_ref().expect("http").paths[0];
    assert_eq!(path.path.as_deref(), Some("/inbox"));
    assert_eq!(
        path.backend.service.as_ref().map(|s| s.name.as_str()),
        Some("erlangen-inbox")
    );
}

#[test]
fn an_external_database_comes_from_its_secret_and_opens_postgres() {
    let ib = inbox(json!({"database": {"externalSecretRef": {"name": "inbox-db", "key": "url"}}}));
    let d = deployable(
        &ib,
        json!({"ingress": {"host": "diz.uk-erlangen.de", "tls": {"secretName": "diz-tls"}}, "auth": site_oidc(true),
               "networkPolicy": {"externalDatabaseCIDRs": ["10.20.0.0/24"]}}),
    );
    let children = objects(&ib, &d);
    let dep: Deployment = typed(&children[2]);
    let c = &dep
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod")
        .containers[0];
    let db = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "INBOX_DATABASE")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("from a Secret");
    assert_eq!((db.name.as_str(), db.key.as_str()), ("inbox-db", "url"));
    let np: NetworkPolicy = typed(&children[4]);
    let egress = serde_json::to_value(np.spec.and_then(|s| s.egress)).expect("json");
    let pg = egress
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["ports"][0]["port"] == 5432)
        .expect("postgres rule");
    assert_eq!(pg["to"][0]["ipBlock"]["cidr"], "10.20.0.0/24");
    // The site's own certificate, no cert-manager annotation.
    let ing: Ingress = typed(&children[5]);
    assert_eq!(ing.metadata.annotations, None);
    assert_eq!(
        ing.spec.and_then(|s| s.tls).expect("tls")[0]
            .secret_name
            .as_deref(),
        Some("diz-tls")
    );
    assert!(
        build::secrets(&ib, &d)
            .contains(&("inbox-db".into(), "spec.database.externalSecretRef".into()))
    );
}

#[test]
fn a_cloudnativepg_database_is_a_cluster_kept_on_deletion_reached_only_by_the_inbox() {
    let ib = inbox(json!({"database": {"cloudNativePG": {"instances": 2, "storageSize": "5Gi"}}}));
    let d = deployable(&ib, json!({"ingress": ingress(), "auth": site_oidc(true)}));
    let children = objects(&ib, &d);
    let kinds: Vec<&str> = children.iter().map(|c| c.resource.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "PersistentVolumeClaim",
            "Cluster",
            "Deployment",
            "Service",
            "NetworkPolicy",
            "Ingress",
            "NetworkPolicy"
        ]
    );
    let cluster = &children[2];
    assert_eq!(
        cluster.object.metadata.name.as_deref(),
        Some("erlangen-inbox-db")
    );
    assert_eq!(
        cluster.object.metadata.owner_references, None,
        "the data outlives the inbox"
    );
    assert_eq!(cluster.object.data["spec"]["instances"], 2);
    assert_eq!(cluster.object.data["spec"]["storage"]["size"], "5Gi");
    assert_eq!(
        cluster.object.data["spec"]["bootstrap"]["initdb"]["database"],
        "inbox"
    );
    let dep: Deployment = typed(&children[3]);
    let c = &dep
        .spec
        .clone()
        .and_then(|s| s.template.spec)
        .expect("pod")
        .containers[0];
    let url = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "INBOX_DATABASE")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("from CloudNativePG's Secret");
    assert_eq!(
        (url.name.as_str(), url.key.as_str()),
        ("erlangen-inbox-db-app", "uri")
    );
    // TLS verified against the cluster's own CA (the -app uri names no sslmode).
    let ca_file = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "INBOX_DATABASE_CA_FILE")
        .and_then(|e| e.value.clone())
        .expect("the CA file is set");
    let ca_mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "database-ca")
        .expect("CA mounted");
    assert_eq!(ca_file, format!("{}/ca.crt", ca_mount.mount_path));
    let pod = dep_pod_volumes(&dep);
    let ca_volume = pod
        .iter()
        .find(|v| v.name == "database-ca")
        .and_then(|v| v.secret.as_ref())
        .expect("CA volume");
    assert_eq!(
        ca_volume.secret_name.as_deref(),
        Some("erlangen-inbox-db-ca")
    );
    assert_eq!(ca_volume.items.as_ref().expect("items")[0].key, "ca.crt");
    // The inbox may reach its cluster's instances on 5432, and only them.
    let np: NetworkPolicy = typed(&children[5]);
    let egress = serde_json::to_value(np.spec.and_then(|s| s.egress)).expect("json");
    let pg = egress
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["ports"][0]["port"] == 5432)
        .expect("postgres rule");
    assert_eq!(
        pg["to"][0]["podSelector"]["matchLabels"]["cnpg.io/cluster"],
        "erlangen-inbox-db"
    );
    // The instances admit the inbox on 5432, each other and CloudNativePG's operator.
    let db: NetworkPolicy = typed(&children[7]);
    let db = serde_json::to_value(db.spec.expect("spec")).expect("json");
    assert_eq!(
        db["podSelector"]["matchLabels"]["cnpg.io/cluster"],
        "erlangen-inbox-db"
    );
    assert_eq!(
        db["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["diz.miracum.org/proposal-inbox"],
        "erlangen"
    );
    assert_eq!(db["ingress"][0]["ports"][0]["port"], 5432);
    assert_eq!(
        db["ingress"][2]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "cnpg-system"
    );
    // CloudNativePG's Secret is not one the site creates.
    assert!(
        build::secrets(&ib, &d)
            .iter()
            .all(|(name, _)| !name.ends_with("-app"))
    );
}

/// The API's notification events reach the service under the service's names
/// (`DecisionRecorded` is its `DecisionTaken`), each one distinct.
#[test]
fn every_notification_event_maps_to_a_distinct_service_event() {
    use crate::api::NotificationEvent as E;
    use miracolix_inbox::notify::Event;
    let all = [
        E::ProposalReceived,
        E::DizChecked,
        E::DecisionRecorded,
        E::ConditionsAnswered,
        E::DeadlineApproaching,
    ];
    let mapped: std::collections::HashSet<Event> =
        all.iter().map(|e| super::config::event(*e)).collect();
    assert_eq!(mapped.len(), all.len());
    assert_eq!(
        super::config::event(E::DecisionRecorded),
        Event::DecisionTaken
    );
    for e in all {
        // Same spelling on both sides except DecisionRecorded.
        let api = serde_json::to_value(e).expect("api event");
        let svc = serde_json::to_value(super::config::event(e)).expect("service event");
        assert!(api == svc || e == E::DecisionRecorded, "{api} -> {svc}");
    }
}

fn dep_pod_volumes(dep: &Deployment) -> Vec<k8s_openapi::api::core::v1::Volume> {
    dep.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.volumes.clone())
        .unwrap_or_default()
}
