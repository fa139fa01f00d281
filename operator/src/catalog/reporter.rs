//! The site's reporter (`spec.reporting`, docs/consortium.md): a CronJob that runs the
//! operator's own image as `miracolix-operator report` (release image key
//! `miracolix-reporter`), with
//! - a ServiceAccount and a Role allowing only `get` on this one DizSite (by `resourceNames`),
//!   bound to it: the job reads the site's status, nothing else;
//! - the site's report key mounted from the Secret `spec.reporting.keySecretName`, which the
//!   operator references but never reads (docs/security.md). A missing Secret leaves the pod in
//!   ContainerCreating with the kubelet's FailedMount Event, which the `Reporting` condition
//!   names;
//! - a NetworkPolicy: egress to DNS, to the site's Blaze, to the hub's port and to the
//!   Kubernetes API (both outside the site, at addresses the catalogue cannot know, so any
//!   address); no ingress. Blaze's own policy admits the reporter ([`super::network_policy`]).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, KeyToPath, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::network_policy::{selector, tcp_port};
use super::{COMPONENT_LABEL, CatalogError, Child, SITE_LABEL, SiteInput, site_meta};
use crate::api::ReportingSpec;
use crate::report::{CA_DIR, CA_FILE, KEY_DIR, KEY_FILE, KEY_ID_FILE};

/// The release image key of the reporter (the operator's own image, docs/image.md).
pub const IMAGE_KEY: &str = "miracolix-reporter";
/// The subcommand the CronJob runs.
pub const SUBCOMMAND: &str = "report";
/// `diz.miracum.org/component` of the reporter's pods (how the site's pod problems find them).
pub const PART: &str = "reporter";
/// The image's user (Dockerfile `USER 65532:65532`, as in [`super::own_image`]).
const UID: i64 = 65532;
/// Blaze's HTTP port and FHIR base (catalog/blaze.rs).
const BLAZE_PORT: i32 = 8080;
/// The Kubernetes API: 443 behind the `kubernetes` Service, 6443 where kube-proxy resolves it
/// to the control plane's own port (kubeadm's default), which NetworkPolicy sees.
const API_PORTS: [i32; 2] = [443, 6443];
/// A run that has not finished within this time is stopped (and counts as failed).
pub const RUN_DEADLINE_SECONDS: i64 = 600;

/// Why the reporter cannot be deployed although `spec.reporting` asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotDeployable {
    /// The release pins no `miracolix-reporter` image.
    NoImage { release: String },
    /// Blaze, whose counts are the Data Map, is not enabled.
    NoBlaze,
}

/// The reporter's object name: `<site>-reporter`.
pub fn name(site: &str) -> String {
    format!("{site}-{PART}")
}

/// Whether, and why not, the reporter can be deployed for this site.
pub fn deployable<'a>(site: &SiteInput<'a>) -> Result<Option<&'a ReportingSpec>, NotDeployable> {
    let Some(spec) = site.spec.reporting.as_ref() else {
        return Ok(None);
    };
    if !site
        .spec
        .components
        .blaze
        .as_ref()
        .is_some_and(|b| b.enabled)
    {
        return Err(NotDeployable::NoBlaze);
    }
    if !site.release.images.contains_key(IMAGE_KEY) {
        return Err(NotDeployable::NoImage {
            release: site.release.name.clone(),
        });
    }
    Ok(Some(spec))
}

/// The cron schedule of an interval, at a minute offset derived from the site's name so that
/// the sites of a consortium do not all report in the same minute. `interval_minutes` is one the
/// CRD admits (a divisor of 60 from 5, or whole hours dividing 24).
pub fn schedule(site: &str, interval_minutes: i32) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, site.as_bytes());
    let spread = u32::from_be_bytes([
        digest.as_ref()[0],
        digest.as_ref()[1],
        digest.as_ref()[2],
        digest.as_ref()[3],
    ]);
    let interval = u32::try_from(interval_minutes.clamp(5, 1440)).unwrap_or(60);
    if interval < 60 {
        let first = spread % interval;
        format!("{first}-59/{interval} * * * *")
    } else {
        let minute = spread % 60;
        let hours = (interval / 60).max(1);
        match hours {
            1 => format!("{minute} * * * *"),
            h if h >= 24 => format!("{minute} {} * * *", (spread / 60) % 24),
            h => format!("{minute} {}-23/{h} * * *", (spread / 60) % h),
        }
    }
}

fn labels(site: &SiteInput) -> BTreeMap<String, String> {
    let mut l = super::site_labels(site, PART);
    l.insert(COMPONENT_LABEL.to_string(), PART.to_string());
    l
}

fn meta(site: &SiteInput) -> ObjectMeta {
    ObjectMeta {
        labels: Some(labels(site)),
        ..site_meta(site, name(site.name), PART)
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// The reporter's children, when `spec.reporting` is set and deployable; nothing otherwise.
pub fn build(site: &SiteInput) -> Result<Vec<Child>, CatalogError> {
    let Ok(Some(spec)) = deployable(site) else {
        return Ok(Vec::new());
    };
    let Some(image) = site.release.images.get(IMAGE_KEY) else {
        return Ok(Vec::new());
    };
    let n = name(site.name);
    let key_secret = spec.key_secret(site.name);

    let mut env_vars = vec![
        env("REPORT_SITE", site.name),
        EnvVar {
            name: "REPORT_NAMESPACE".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
        env("REPORT_HUB_URL", spec.hub_url.clone()),
        env(
            "REPORT_BLAZE_URL",
            format!(
                "http://{}-blaze:{BLAZE_PORT}{}",
                site.name,
                super::blaze::CONTEXT_PATH
            ),
        ),
        env("REPORT_RESOURCE_TYPES", spec.resource_types.join(",")),
        env("REPORT_INTERVAL_MINUTES", spec.interval_minutes.to_string()),
        env("REPORT_KEY_FILE", format!("{KEY_DIR}/{KEY_FILE}")),
        env("REPORT_KEY_ID_FILE", format!("{KEY_DIR}/{KEY_ID_FILE}")),
    ];
    let mut mounts = vec![VolumeMount {
        name: "report-key".into(),
        mount_path: KEY_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    // Only the named keys, readable by the image's group only (fsGroup below): the key is the
    // site's signature. A Secret without one of them fails the mount, which names the key.
    let secret_volume = |volume: &str, secret: &str, keys: &[&str]| Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            default_mode: Some(0o440),
            items: Some(
                keys.iter()
                    .map(|k| KeyToPath {
                        key: (*k).to_string(),
                        path: (*k).to_string(),
                        ..KeyToPath::default()
                    })
                    .collect(),
            ),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mut volumes = vec![secret_volume(
        "report-key",
        &key_secret,
        &[KEY_FILE, KEY_ID_FILE],
    )];
    if let Some(ca) = &spec.hub_ca_secret_name {
        env_vars.push(env("REPORT_HUB_CA", format!("{CA_DIR}/{CA_FILE}")));
        mounts.push(VolumeMount {
            name: "hub-ca".into(),
            mount_path: CA_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(secret_volume("hub-ca", ca, &[CA_FILE]));
    }
    let quantity = |s: &str| Quantity(s.to_string());
    let container = Container {
        name: PART.into(),
        image: Some(super::image_ref(image)),
        // The entrypoint is the operator binary; args replace the image's `run`.
        args: Some(vec![SUBCOMMAND.into()]),
        env: Some(env_vars),
        volume_mounts: Some(mounts),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), quantity("10m")),
                ("memory".to_string(), quantity("32Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), quantity("200m")),
                ("memory".to_string(), quantity("64Mi")),
            ])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(UID),
            run_as_group: Some(UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let pod_labels = labels(site);
    let cronjob = CronJob {
        metadata: meta(site),
        spec: Some(CronJobSpec {
            schedule: schedule(site.name, spec.interval_minutes),
            // The period a report belongs to is computed in UTC (report::period_sequence).
            time_zone: Some("Etc/UTC".into()),
            // A run still going when the next is due: the next waits (one report per period).
            concurrency_policy: Some("Forbid".into()),
            // A run missed by more than this (operator or control plane down) is skipped: its
            // period is over, the next period's run reports the site as it is then.
            starting_deadline_seconds: Some(i64::from(spec.interval_minutes) * 30),
            successful_jobs_history_limit: Some(1),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    // The command retries the POST itself; a new pod helps only when the pod
                    // itself failed. Reruns of a period are harmless (one report per period).
                    backoff_limit: Some(2),
                    active_deadline_seconds: Some(RUN_DEADLINE_SECONDS),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            service_account_name: Some(n.clone()),
                            restart_policy: Some("Never".into()),
                            containers: vec![container],
                            volumes: Some(volumes),
                            security_context: Some(PodSecurityContext {
                                run_as_non_root: Some(true),
                                run_as_user: Some(UID),
                                run_as_group: Some(UID),
                                fs_group: Some(UID),
                                seccomp_profile: Some(SeccompProfile {
                                    type_: "RuntimeDefault".into(),
                                    ..SeccompProfile::default()
                                }),
                                ..PodSecurityContext::default()
                            }),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    };
    let account = ServiceAccount {
        metadata: meta(site),
        // The token is what the job reads its DizSite with.
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    };
    let role = Role {
        metadata: meta(site),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![crate::api::GROUP.into()]),
            resources: Some(vec!["dizsites".into()]),
            resource_names: Some(vec![site.name.to_string()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(site),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: n.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: n.clone(),
            namespace: Some(site.namespace.to_string()),
            ..Subject::default()
        }]),
    };
    let mut children = vec![
        Child::from_typed(account, None)?,
        Child::from_typed(role, None)?,
        Child::from_typed(binding, None)?,
        Child::from_typed(cronjob, None)?,
    ];
    if super::network_policy::enabled(site) {
        children.push(Child::from_typed(network_policy(site, spec), None)?);
    }
    Ok(children)
}

/// The port the hub listens on, from its URL (443 for https without one).
fn hub_port(url: &str) -> i32 {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let port = authority
        .rsplit_once(':')
        .filter(|(host, _)| !host.ends_with(']') || authority.starts_with('['))
        .and_then(|(_, p)| p.parse().ok());
    port.unwrap_or(if url.starts_with("http://") { 80 } else { 443 })
}

fn network_policy(site: &SiteInput, spec: &ReportingSpec) -> NetworkPolicy {
    let listed = super::network_policy::spec_of(site);
    let hub_cidrs = listed.map(|n| n.hub_cidrs.as_slice()).unwrap_or_default();
    let api_cidrs = listed
        .map(|n| n.api_server_cidrs.as_slice())
        .unwrap_or_default();
    NetworkPolicy {
        metadata: meta(site),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(&[
                (SITE_LABEL, site.name),
                (COMPONENT_LABEL, PART),
            ])),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(Vec::new()),
            egress: Some(vec![
                super::network_policy::dns_rule(),
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(selector(&[
                            (SITE_LABEL, site.name),
                            (COMPONENT_LABEL, "blaze"),
                        ])),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp_port(BLAZE_PORT)]),
                },
                // The hub: outside the site, at the CIDRs the site lists, else anywhere.
                NetworkPolicyEgressRule {
                    to: super::network_policy::external_peers(hub_cidrs),
                    ports: Some(vec![tcp_port(hub_port(&spec.hub_url))]),
                },
                // The API server (the reporter reads its DizSite): its endpoints after DNAT.
                NetworkPolicyEgressRule {
                    to: super::network_policy::external_peers(api_cidrs),
                    ports: Some(API_PORTS.iter().copied().map(tcp_port).collect()),
                },
            ]),
        }),
    }
}

/// The reporter's NetworkPolicy name and the ports it may reach at any address (none when the
/// site lists `hubCIDRs` and `apiServerCIDRs`), for the `NetworkRestricted` condition. `None`
/// when the site runs no reporter or no NetworkPolicies.
pub fn open_egress(site: &SiteInput) -> Option<(String, Vec<i32>)> {
    let Ok(Some(spec)) = deployable(site) else {
        return None;
    };
    if !super::network_policy::enabled(site) {
        return None;
    }
    let policy = network_policy(site, spec);
    let mut ports = super::network_policy::any_address_ports(&policy);
    ports.sort_unstable();
    ports.dedup();
    (!ports.is_empty()).then(|| (policy.metadata.name.unwrap_or_default(), ports))
}

/// The ingress rule Blaze's policy adds for the reporter (when the site reports).
pub fn blaze_ingress(
    site: &SiteInput,
) -> Option<k8s_openapi::api::networking::v1::NetworkPolicyIngressRule> {
    matches!(deployable(site), Ok(Some(_))).then(|| {
        k8s_openapi::api::networking::v1::NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(selector(&[
                    (SITE_LABEL, site.name),
                    (COMPONENT_LABEL, PART),
                ])),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![tcp_port(BLAZE_PORT)]),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every schedule, parsed by the maintenance window's cron parser, fires exactly every
    /// `interval` minutes through a whole day; sites get different minutes.
    #[test]
    fn schedules_fire_every_interval_and_spread_sites() {
        use crate::release::window::Schedule;
        let tz = jiff::tz::TimeZone::UTC;
        for interval in [
            5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440,
        ] {
            for site in ["erlangen", "dresden", "marburg", "magdeburg"] {
                let text = schedule(site, interval);
                let parsed = Schedule::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                let start: jiff::Timestamp = "2026-11-30T00:00:00Z".parse().expect("time");
                let mut at = parsed.next_after(&tz, start).expect("fires");
                let first = at;
                let mut fired = 1;
                loop {
                    let next = parsed.next_after(&tz, at).expect("fires");
                    if next.duration_since(first).as_secs() >= 86_400 {
                        break;
                    }
                    assert_eq!(
                        next.duration_since(at).as_secs(),
                        i64::from(interval) * 60,
                        "{site} every {interval} min: {text}"
                    );
                    at = next;
                    fired += 1;
                }
                assert_eq!(
                    fired,
                    1440 / interval,
                    "{site} every {interval} min: {text}"
                );
            }
        }
        let minutes: std::collections::BTreeSet<String> =
            ["erlangen", "dresden", "marburg", "magdeburg"]
                .iter()
                .map(|s| schedule(s, 60))
                .collect();
        assert!(
            minutes.len() > 1,
            "every site reports in the same minute: {minutes:?}"
        );
    }

    fn input_for<'a>(
        spec: &'a crate::api::DizSiteSpec,
        release: &'a super::super::ResolvedRelease,
    ) -> SiteInput<'a> {
        SiteInput {
            name: "erlangen",
            namespace: "diz-erlangen",
            uid: "uid-1",
            spec,
            release,
            cnpg_available: false,
        }
    }

    fn spec(yaml: &str) -> crate::api::DizSiteSpec {
        crate::yaml::from_multi_doc(&format!(
            "siteId: erlangen\nrelease: {{name: miracolix-2026.1}}\n{yaml}"
        ))
        .expect("spec")
        .remove(0)
    }

    fn release(with_reporter: bool) -> super::super::ResolvedRelease {
        let image = |repo: &str| crate::api::ComponentImage {
            repository: repo.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            version: "1".into(),
        };
        let mut images = BTreeMap::from([("blaze".to_string(), image("ghcr.io/samply/blaze"))]);
        if with_reporter {
            images.insert(IMAGE_KEY.into(), image(super::super::own_image::REPOSITORY));
        }
        super::super::ResolvedRelease {
            name: "miracolix-2026.1".into(),
            version: "2026.1".into(),
            images,
            ..Default::default()
        }
    }

    /// The reporter's pod runs restricted (non-root, read-only root, no capabilities, no
    /// privilege escalation, RuntimeDefault seccomp), its Role grants `get` on its own DizSite
    /// only, and nothing is built without `spec.reporting`, without Blaze or without the image.
    #[test]
    fn the_reporter_runs_restricted_with_a_role_for_its_own_site_only() {
        let with = spec(
            "components: {blaze: {}}\nreporting: {hubUrl: 'https://hub.example.org:8443', intervalMinutes: 15, hubCASecretName: hub-ca}\n",
        );
        let rel = release(true);
        let children = build(&input_for(&with, &rel)).expect("build");
        let kinds: Vec<String> = children.iter().map(|c| c.key().1).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "CronJob",
                "NetworkPolicy"
            ]
        );
        let json = |kind: &str| {
            serde_json::to_value(
                &children
                    .iter()
                    .find(|c| c.key().1 == kind)
                    .expect(kind)
                    .object,
            )
            .expect("json")
        };
        let cj = json("CronJob");
        let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["runAsUser"], UID);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(c["args"], serde_json::json!(["report"]));
        assert_eq!(pod["serviceAccountName"], "erlangen-reporter");
        let env: BTreeMap<String, String> = c["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_string(),
                    e["value"].as_str()?.to_string(),
                ))
            })
            .collect();
        assert_eq!(env["REPORT_HUB_CA"], format!("{CA_DIR}/{CA_FILE}"));
        assert_eq!(env["REPORT_INTERVAL_MINUTES"], "15");
        assert_eq!(env["REPORT_BLAZE_URL"], "http://erlangen-blaze:8080/fhir");
        assert_eq!(
            env["REPORT_RESOURCE_TYPES"],
            crate::api::DEFAULT_REPORT_TYPES.join(",")
        );
        let secrets: Vec<&str> = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter_map(|v| v["secret"]["secretName"].as_str())
            .collect();
        assert_eq!(secrets, ["erlangen-report-key", "hub-ca"]);
        assert!(
            cj["spec"]["schedule"]
                .as_str()
                .expect("schedule")
                .ends_with("-59/15 * * * *")
        );
        let role = json("Role");
        assert_eq!(
            role["rules"],
            serde_json::json!([{"apiGroups": ["diz.miracum.org"], "resources": ["dizsites"],
                                "resourceNames": ["erlangen"], "verbs": ["get"]}])
        );
        let np = json("NetworkPolicy");
        let ports = |rule: usize| -> Vec<i64> {
            np["spec"]["egress"][rule]["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .filter_map(|p| p["port"].as_i64())
                .collect()
        };
        assert_eq!(ports(2), [8443], "the hub's port");
        assert_eq!(ports(3), [443, 6443], "the API server's ports");
        assert_eq!(
            np["spec"]["egress"][2].get("to"),
            None,
            "no hubCIDRs: anywhere"
        );
        assert_eq!(np["spec"]["ingress"], serde_json::json!([]));
        assert_eq!(
            open_egress(&input_for(&with, &rel)),
            Some(("erlangen-reporter".to_string(), vec![443, 6443, 8443]))
        );

        let without = spec("components: {blaze: {}}\n");
        assert!(build(&input_for(&without, &rel)).expect("build").is_empty());
        let no_blaze = spec("reporting: {hubUrl: 'https://hub.example.org'}\n");
        assert_eq!(
            deployable(&input_for(&no_blaze, &rel)),
            Err(NotDeployable::NoBlaze)
        );
        assert!(
            build(&input_for(&no_blaze, &rel))
                .expect("build")
                .is_empty()
        );
        let old = release(false);
        assert_eq!(
            deployable(&input_for(&with, &old)),
            Err(NotDeployable::NoImage {
                release: "miracolix-2026.1".into()
            })
        );
        assert!(build(&input_for(&with, &old)).expect("build").is_empty());
    }

    /// With `hubCIDRs` and `apiServerCIDRs` the reporter reaches only those addresses, and
    /// nothing of it is open egress; either list alone leaves the other open.
    #[test]
    fn listed_cidrs_close_the_reporters_egress() {
        let rel = release(true);
        let both = spec(
            "components: {blaze: {}}\nreporting: {hubUrl: 'https://hub.example.org'}\nnetworkPolicy: {hubCIDRs: [192.0.2.10/32], apiServerCIDRs: [10.0.0.0/24, 10.0.1.0/24]}\n",
        );
        let input = input_for(&both, &rel);
        let np = build(&input)
            .expect("build")
            .into_iter()
            .find(|c| c.key().1 == "NetworkPolicy")
            .expect("policy");
        let np = serde_json::to_value(&np.object).expect("json");
        let cidrs = |rule: usize| -> Vec<String> {
            np["spec"]["egress"][rule]["to"]
                .as_array()
                .expect("to")
                .iter()
                .map(|p| p["ipBlock"]["cidr"].as_str().expect("cidr").to_string())
                .collect()
        };
        assert_eq!(cidrs(2), ["192.0.2.10/32"]);
        assert_eq!(cidrs(3), ["10.0.0.0/24", "10.0.1.0/24"]);
        assert_eq!(open_egress(&input), None);

        let hub_only = spec(
            "components: {blaze: {}}\nreporting: {hubUrl: 'https://hub.example.org'}\nnetworkPolicy: {hubCIDRs: [192.0.2.10/32]}\n",
        );
        assert_eq!(
            open_egress(&input_for(&hub_only, &rel)),
            Some(("erlangen-reporter".to_string(), vec![443, 6443]))
        );
        let off = spec(
            "components: {blaze: {}}\nreporting: {hubUrl: 'https://hub.example.org'}\nnetworkPolicy: {enabled: false}\n",
        );
        assert_eq!(open_egress(&input_for(&off, &rel)), None);
    }

    #[test]
    fn hub_ports() {
        assert_eq!(hub_port("https://hub.miracum.org"), 443);
        assert_eq!(hub_port("https://hub.miracum.org:8443/x"), 8443);
        assert_eq!(hub_port("http://127.0.0.1:9000"), 9000);
        assert_eq!(hub_port("https://[::1]:9443"), 9443);
        assert_eq!(hub_port("https://[::1]"), 443);
    }
}
