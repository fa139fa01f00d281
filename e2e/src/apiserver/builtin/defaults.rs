//! The defaults kube-apiserver 1.33 fills into built-in objects when it decodes them, before
//! admission and validation: the `SetDefaults_*` functions of `pkg/apis/{core,apps,batch,
//! networking,rbac}/v1/defaults.go` and the declarative `+default` markers of `k8s.io/api`
//! (`zz_generated.defaults.go`), for the kinds served here. Each rule cites its function.
//!
//! Fields the registry (not the decoder) fills in, such as a Service's cluster IP, are in
//! `allocate`.

use serde_json::{Map, Value, json};

use super::quantity::Quantity;

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(key).and_then(Value::as_object_mut)
}

/// Sets `key` when it is absent (or null, which decodes to the Go zero value).
fn or_insert(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// Sets `key` when absent, null, or the zero value `0` / `""` (a Go field without a pointer
/// cannot tell them apart).
fn or_insert_nonzero(m: &mut Map<String, Value>, key: &str, value: Value) {
    let zero = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if zero {
        m.insert(key.to_string(), value);
    }
}

fn each_item<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Applies the defaults of `kind` (group/version already checked by the caller).
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                pod_spec(spec);
                pod_only(spec);
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                service(spec);
            }
        }
        ("", "Secret") => {
            // SetDefaults_Secret.
            if let Some(m) = obj.as_object_mut() {
                or_insert_nonzero(m, "type", json!("Opaque"));
            }
        }
        ("", "PersistentVolumeClaim") => persistent_volume_claim(obj),
        ("apps", "Deployment") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                deployment(spec);
                template(spec);
            }
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                stateful_set(spec);
                template(spec);
            }
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                // SetDefaults_ReplicaSet.
                or_insert(spec, "replicas", json!(1));
                template(spec);
            }
        }
        ("batch", "Job") => job(obj),
        ("batch", "CronJob") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                cron_job(spec);
                // Only the pod template inside the job template is defaulted:
                // SetDefaults_Job applies to Jobs, not to JobTemplateSpec.
                if let Some(job_spec) = spec.get_mut("jobTemplate").and_then(|t| obj_mut(t, "spec"))
                {
                    template(job_spec);
                }
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                network_policy(spec);
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if let Some(m) = obj.as_object_mut() {
                // SetDefaults_Subject (rbac/v1/defaults.go): users and groups are RBAC's.
                for subject in each_item(m, "subjects") {
                    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
                    if matches!(kind, "User" | "Group") {
                        or_insert_nonzero(subject, "apiGroup", json!("rbac.authorization.k8s.io"));
                    }
                }
            }
        }
        _ => {}
    }
}

/// A `template` (PodTemplateSpec) under a workload spec.
fn template(spec: &mut Map<String, Value>) {
    if let Some(pod) = spec.get_mut("template").and_then(|t| obj_mut(t, "spec")) {
        pod_spec(pod);
    }
}

/// SetDefaults_Deployment (apps/v1/defaults.go).
fn deployment(spec: &mut Map<String, Value>) {
    or_insert(spec, "replicas", json!(1));
    let strategy = spec
        .entry("strategy")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(strategy) = strategy {
        or_insert_nonzero(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate")) {
            let ru = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if ru.is_null() {
                *ru = json!({});
            }
            if let Some(ru) = ru.as_object_mut() {
                or_insert(ru, "maxUnavailable", json!("25%"));
                or_insert(ru, "maxSurge", json!("25%"));
            }
        }
    }
    or_insert(spec, "revisionHistoryLimit", json!(10));
    or_insert(spec, "progressDeadlineSeconds", json!(600));
}

/// SetDefaults_StatefulSet (apps/v1/defaults.go; StatefulSetAutoDeletePVC is GA in 1.32).
fn stateful_set(spec: &mut Map<String, Value>) {
    or_insert_nonzero(spec, "podManagementPolicy", json!("OrderedReady"));
    let strategy = spec.entry("updateStrategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        if strategy.get("type").is_none_or(|t| t.is_null() || t == "") {
            strategy.insert("type".into(), json!("RollingUpdate"));
            or_insert(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = strategy
                .get_mut("rollingUpdate")
                .and_then(Value::as_object_mut)
        {
            or_insert(ru, "partition", json!(0));
        }
    }
    let retention = spec
        .entry("persistentVolumeClaimRetentionPolicy")
        .or_insert_with(|| json!({}));
    if let Some(r) = retention.as_object_mut() {
        or_insert_nonzero(r, "whenDeleted", json!("Retain"));
        or_insert_nonzero(r, "whenScaled", json!("Retain"));
    }
    or_insert(spec, "replicas", json!(1));
    or_insert(spec, "revisionHistoryLimit", json!(10));
    for claim in each_item(spec, "volumeClaimTemplates") {
        // SetDefaults_PersistentVolumeClaimSpec and SetDefaults_PersistentVolumeClaim reach the
        // embedded claims too.
        if let Some(cs) = claim.get_mut("spec").and_then(Value::as_object_mut) {
            pvc_spec(cs);
        }
        let status = claim.entry("status").or_insert_with(|| json!({}));
        if let Some(st) = status.as_object_mut() {
            or_insert_nonzero(st, "phase", json!("Pending"));
        }
    }
}

/// SetDefaults_Job (batch/v1/defaults.go at v1.33, JobPodReplacementPolicy beta).
fn job(obj: &mut Value) {
    let template_labels = obj.pointer("/spec/template/metadata/labels").cloned();
    if let Some(spec) = obj_mut(obj, "spec") {
        if spec.get("completions").is_none_or(Value::is_null)
            && spec.get("parallelism").is_none_or(Value::is_null)
        {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        or_insert(spec, "parallelism", json!(1));
        // With backoffLimitPerIndex the global limit defaults to MaxInt32.
        let per_index = spec
            .get("backoffLimitPerIndex")
            .is_some_and(|v| !v.is_null());
        or_insert(
            spec,
            "backoffLimit",
            json!(if per_index { i64::from(i32::MAX) } else { 6 }),
        );
        or_insert(spec, "completionMode", json!("NonIndexed"));
        or_insert(spec, "suspend", json!(false));
        let policy = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        or_insert(spec, "podReplacementPolicy", json!(policy));
        template(spec);
    }
    if let Some(labels) = template_labels.filter(Value::is_object)
        && let Some(meta) = obj_mut(obj, "metadata")
        && meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), labels);
    }
}

/// SetDefaults_CronJob (batch/v1/defaults.go).
fn cron_job(spec: &mut Map<String, Value>) {
    or_insert_nonzero(spec, "concurrencyPolicy", json!("Allow"));
    or_insert(spec, "suspend", json!(false));
    or_insert(spec, "successfulJobsHistoryLimit", json!(3));
    or_insert(spec, "failedJobsHistoryLimit", json!(1));
}

/// SetDefaults_NetworkPolicy and SetDefaults_NetworkPolicyPort (networking/v1/defaults.go).
fn network_policy(spec: &mut Map<String, Value>) {
    let has_egress = spec
        .get("egress")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    if spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let mut types = vec![json!("Ingress")];
        if has_egress {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    for direction in ["ingress", "egress"] {
        for rule in each_item(spec, direction) {
            for port in each_item(rule, "ports") {
                or_insert(port, "protocol", json!("TCP"));
            }
        }
    }
}

/// SetDefaults_Service (core/v1/defaults.go).
fn service(spec: &mut Map<String, Value>) {
    or_insert_nonzero(spec, "sessionAffinity", json!("None"));
    if spec.get("sessionAffinity") == Some(&json!("None")) {
        spec.remove("sessionAffinityConfig");
    } else if spec.get("sessionAffinity") == Some(&json!("ClientIP"))
        && spec
            .get("sessionAffinityConfig")
            .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
            .is_none_or(Value::is_null)
    {
        // DefaultClientIPServiceAffinitySeconds: three hours.
        spec.insert(
            "sessionAffinityConfig".into(),
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
    }
    or_insert_nonzero(spec, "type", json!("ClusterIP"));
    for port in each_item(spec, "ports") {
        or_insert_nonzero(port, "protocol", json!("TCP"));
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset && let Some(p) = port.get("port").cloned() {
            port.insert("targetPort".into(), p);
        }
    }
    let type_ = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    // service.ExternallyAccessible: LoadBalancer, NodePort, or ClusterIP with externalIPs.
    let external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if matches!(type_.as_str(), "LoadBalancer" | "NodePort")
        || (type_ == "ClusterIP" && external_ips)
    {
        or_insert_nonzero(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(type_.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        or_insert(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if type_ == "LoadBalancer" {
        or_insert(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// SetDefaults_PersistentVolumeClaim(Spec) and SetDefaults_ResourceList (core/v1/defaults.go).
fn persistent_volume_claim(obj: &mut Value) {
    if let Some(spec) = obj_mut(obj, "spec") {
        pvc_spec(spec);
    }
}

fn pvc_spec(spec: &mut Map<String, Value>) {
    or_insert(spec, "volumeMode", json!("Filesystem"));
    if let Some(resources) = spec.get_mut("resources").and_then(Value::as_object_mut) {
        resource_lists(resources);
    }
}

/// SetDefaults_ResourceList: every quantity of `limits` and `requests` rounded up to milli
/// precision ("0.0001" → "1m").
fn resource_lists(resources: &mut Map<String, Value>) {
    for list in ["limits", "requests"] {
        if let Some(l) = resources.get_mut(list).and_then(Value::as_object_mut) {
            for v in l.values_mut() {
                if let Some(q) = v.as_str().and_then(Quantity::parse) {
                    *v = Value::String(q.round_up_milli().to_string());
                }
            }
        }
    }
}

/// SetDefaults_PodSpec, and the defaults of everything a pod spec contains (containers,
/// probes, volumes).
pub fn pod_spec(spec: &mut Map<String, Value>) {
    or_insert_nonzero(spec, "dnsPolicy", json!("ClusterFirst"));
    or_insert_nonzero(spec, "restartPolicy", json!("Always"));
    or_insert(spec, "securityContext", json!({}));
    // DefaultTerminationGracePeriodSeconds.
    or_insert(spec, "terminationGracePeriodSeconds", json!(30));
    or_insert_nonzero(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each_item(spec, list) {
            container(c);
        }
    }
    for volume in each_item(spec, "volumes") {
        volume_defaults(volume);
    }
}

/// SetDefaults_Pod: only for Pods, not for templates.
fn pod_only(spec: &mut Map<String, Value>) {
    for list in ["containers", "initContainers"] {
        for c in each_item(spec, list) {
            let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            let requests = resources.entry("requests").or_insert_with(|| json!({}));
            if let Some(r) = requests.as_object_mut() {
                for (k, v) in limits {
                    r.entry(k).or_insert(v);
                }
            }
        }
    }
    // DefaultEnableServiceLinks.
    or_insert(spec, "enableServiceLinks", json!(true));
}

/// SetDefaults_Container plus the declarative default of `ContainerPort.protocol`.
fn container(c: &mut Map<String, Value>) {
    if c.get("imagePullPolicy")
        .is_none_or(|p| p.is_null() || p == "")
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    // TerminationMessagePathDefault and TerminationMessageReadFile.
    or_insert_nonzero(c, "terminationMessagePath", json!("/dev/termination-log"));
    or_insert_nonzero(c, "terminationMessagePolicy", json!("File"));
    for port in each_item(c, "ports") {
        or_insert_nonzero(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            probe_defaults(p);
        }
    }
    for env in each_item(c, "env") {
        // SetDefaults_ObjectFieldSelector.
        if let Some(field_ref) = env
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            or_insert_nonzero(field_ref, "apiVersion", json!("v1"));
        }
    }
    if let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) {
        resource_lists(resources);
    }
}

/// The tag `parsers.ParseImageName` finds: `latest` when none is given; a digest-only reference
/// has no tag (and so pulls IfNotPresent).
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => tag,
        None if digest => "",
        None => "latest",
    }
}

/// SetDefaults_Probe and SetDefaults_HTTPGetAction.
fn probe_defaults(p: &mut Map<String, Value>) {
    or_insert_nonzero(p, "timeoutSeconds", json!(1));
    or_insert_nonzero(p, "periodSeconds", json!(10));
    or_insert_nonzero(p, "successThreshold", json!(1));
    or_insert_nonzero(p, "failureThreshold", json!(3));
    if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
        or_insert_nonzero(h, "path", json!("/"));
        or_insert_nonzero(h, "scheme", json!("HTTP"));
    }
}

/// SetDefaults_Volume and the volume sources' defaults (modes 0644 = 420).
fn volume_defaults(v: &mut Map<String, Value>) {
    let any_source = v.keys().any(|k| k != "name");
    if !any_source {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            or_insert(s, "defaultMode", json!(420));
        }
    }
    if let Some(projected) = v.get_mut("projected").and_then(Value::as_object_mut) {
        for source in each_item(projected, "sources") {
            if let Some(t) = source
                .get_mut("serviceAccountToken")
                .and_then(Value::as_object_mut)
            {
                // SetDefaults_ServiceAccountTokenProjection: one hour.
                or_insert(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        // SetDefaults_HostPathVolumeSource: HostPathUnset.
        or_insert(h, "type", json!(""));
    }
    if let Some(claim) = v
        .get_mut("ephemeral")
        .and_then(|e| e.get_mut("volumeClaimTemplate"))
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        pvc_spec(claim);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_as_parse_image_name_reads_them() {
        for (image, tag) in [
            ("nginx", "latest"),
            ("nginx:latest", "latest"),
            ("nginx:1.27", "1.27"),
            ("registry:5000/team/app", "latest"),
            ("registry:5000/team/app:2", "2"),
            ("ghcr.io/x/y@sha256:abc", ""),
            ("ghcr.io/x/y:1@sha256:abc", "1"),
        ] {
            assert_eq!(image_tag(image), tag, "{image}");
        }
    }

    #[test]
    fn a_minimal_deployment_gets_what_kube_apiserver_adds() {
        let mut d = json!({"spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {
                "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                    "readinessProbe": {"httpGet": {"port": 80}}}],
                "volumes": [{"name": "s", "secret": {"secretName": "s"}}, {"name": "e"}],
            }},
        }});
        apply("apps", "Deployment", &mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert!(pod.get("enableServiceLinks").is_none(), "Pod-only default");
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(pod["volumes"][0]["secret"]["defaultMode"], 420);
        assert_eq!(pod["volumes"][1]["emptyDir"], json!({}));
    }

    #[test]
    fn services_jobs_cronjobs_and_policies() {
        let mut s = json!({"spec": {"ports": [{"port": 80}, {"port": 81, "targetPort": "http"}]}});
        apply("", "Service", &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["ports"][1]["targetPort"], "http");
        assert!(s["spec"].get("externalTrafficPolicy").is_none());

        let mut j = json!({"metadata": {}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {}}}});
        apply("batch", "Job", &mut j);
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["suspend"], false);
        assert_eq!(j["metadata"]["labels"], json!({"a": "b"}));

        let mut cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {}}}}}});
        apply("batch", "CronJob", &mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert!(
            cj["spec"]["jobTemplate"]["spec"]
                .get("backoffLimit")
                .is_none()
        );
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
            "Always"
        );

        let mut np = json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}});
        apply("networking.k8s.io", "NetworkPolicy", &mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");

        let mut sts = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "d"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}}}], "template": {"spec": {}}}});
        apply("apps", "StatefulSet", &mut sts);
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
    }

    #[test]
    fn pods_copy_limits_into_missing_requests_and_round_to_milli() {
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "x:1",
            "resources": {"limits": {"cpu": "0.0001", "memory": "1Gi"}, "requests": {"memory": "1Mi"}}}]}});
        apply("", "Pod", &mut p);
        let r = &p["spec"]["containers"][0]["resources"];
        assert_eq!(r["limits"]["cpu"], "1m");
        assert_eq!(r["requests"], json!({"cpu": "1m", "memory": "1Mi"}));
        assert_eq!(p["spec"]["enableServiceLinks"], true);
        assert_eq!(
            p["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }
}
