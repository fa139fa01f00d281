#!/usr/bin/env python3
"""Checks for rendered install manifests; called by scripts/chart-test.sh.

  chart_check.py validate K8S_VERSION FILE...   every built-in object valid (kubernetes-validate
                                                --strict); install invariants hold
  chart_check.py compare HELM.yaml KUSTOMIZE.yaml
                                                the Helm chart (default values) and the kustomize
                                                base install the same thing

Needs PyYAML (a dependency of kubernetes-validate, so present once scripts/install-tools.sh ran).
Exits non-zero with one line per problem.
"""

import json
import os
import subprocess
import sys
import tempfile

import yaml

# Custom resources the chart may render: kubernetes-validate has no schema for them (it only warns
# "Couldn't find schema"), so they are checked here by shape instead. Any other kind without a
# schema is an error: a typo in apiVersion must not pass as "unknown, skipped".
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

NAMESPACED_RBAC = ("Role", "RoleBinding")

problems = []


def problem(where, msg):
    problems.append(f"{where}: {msg}")


def load(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for d in docs:
        if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind"):
            problem(path, f"not a Kubernetes object: {str(d)[:80]}")
    return [d for d in docs if isinstance(d, dict)]


def ident(o):
    md = o.get("metadata", {})
    return (o.get("kind"), md.get("namespace", ""), md.get("name"))


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


# ---------------------------------------------------------------------------------------- validate


def kubernetes_validate(version, files):
    """Runs kubernetes-validate once over all files; any WARN or ERROR line is a failure."""
    cmd = ["kubernetes-validate", "--strict", "--kubernetes-version", version, "--quiet", *files]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = (res.stdout + res.stderr).strip()
    bad = [line for line in out.splitlines() if line.startswith(("WARN", "ERROR"))]
    if res.returncode != 0 or bad:
        for line in bad or out.splitlines() or [f"exit status {res.returncode}"]:
            problem("kubernetes-validate", line)


def check_custom(path, o):
    where = f"{path} {ident(o)}"
    if o["kind"] == "ServiceMonitor":
        spec = o.get("spec", {})
        if not spec.get("selector", {}).get("matchLabels"):
            problem(where, "ServiceMonitor without spec.selector.matchLabels")
        eps = spec.get("endpoints") or []
        if not eps or any(e.get("port") != "metrics" for e in eps):
            problem(where, "ServiceMonitor must scrape the named port `metrics`")


def container_names(dep):
    return [c.get("name") for c in dep["spec"]["template"]["spec"].get("containers", [])]


def check_restricted(where, pod, c):
    """The pod and container security settings of the restricted Pod Security Standard and more."""
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    for key, want in (("runAsNonRoot", True), ("runAsUser", 65532), ("runAsGroup", 65532)):
        if psc.get(key) != want:
            problem(where, f"pod securityContext.{key} must be {want}")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "pod seccompProfile must be RuntimeDefault")
    for key, want in (("readOnlyRootFilesystem", True), ("allowPrivilegeEscalation", False),
                      ("runAsNonRoot", True)):
        if csc.get(key) != want:
            problem(where, f"container securityContext.{key} must be {want}")
    if csc.get("capabilities", {}).get("drop") != ["ALL"]:
        problem(where, "container must drop ALL capabilities")
    for res in ("requests", "limits"):
        if not c.get("resources", {}).get(res):
            problem(where, f"resources.{res} missing")


def selects(np, dep):
    sel = np["spec"]["podSelector"].get("matchLabels", {})
    labels = dep["spec"]["template"]["metadata"]["labels"]
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())


def check_invariants(path, docs):
    """What every rendering of the install must satisfy, whatever the values."""
    deps = by_kind(docs, "Deployment")
    operators = [d for d in deps if container_names(d) == ["operator"]]
    hubs = [d for d in deps if container_names(d) == ["hub"]]
    for d in deps:
        if d not in operators and d not in hubs:
            problem(f"{path} Deployment/{d['metadata']['name']}",
                    "a Deployment must be the operator (one container `operator`, scripts/e2e-kind.sh) "
                    "or the hub (one container `hub`)")
    if len(operators) > 1 or len(hubs) > 1 or not operators + hubs:
        problem(path, f"expected at most one operator Deployment and one hub, and at least one "
                      f"of them, found {len(operators)} and {len(hubs)}")
        return
    for hub in hubs:
        check_hub(path, docs, hub)
    if not operators:
        return  # the hub alone (manifests/hub/)
    dep = operators[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    where = f"{path} Deployment/{dep['metadata']['name']}"
    c = pod["containers"][0]
    check_restricted(where, pod, c)
    if pod.get("automountServiceAccountToken") is not True:
        problem(where, "automountServiceAccountToken must be true (the operator needs the API)")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if set(ports) != {"http", "metrics"} or len(set(ports.values())) != 2:
        problem(where, f"ports must be http and metrics on different numbers, got {ports}")
    for probe, path_ in (("startupProbe", "/livez"), ("livenessProbe", "/livez"),
                         ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path_ or get.get("port") != "http":
            problem(where, f"{probe} must GET {path_} on port http")
    env = {e["name"]: e for e in c.get("env", [])}
    for name, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        if env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != field:
            problem(where, f"env {name} must come from the downward API ({field})")
    for name in ("RUST_LOG", "LOG_FORMAT"):
        if name not in env:
            problem(where, f"env {name} missing")

    args = c.get("args", [])
    if args[:3] != ["run", "--trusted-keys", "/etc/miracolix/trusted-keys"]:
        problem(where, f"args must start with run --trusted-keys /etc/miracolix/trusted-keys: {args}")
    watched = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--namespace"]
    leader = "--leader-elect" in args
    replicas = spec.get("replicas", 1)
    ns = dep["metadata"].get("namespace", "")

    # trusted keys: mounted from a Secret, read-only, at the --trusted-keys path
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    m = mounts.get("/etc/miracolix/trusted-keys")
    if not m or not m.get("readOnly"):
        problem(where, "trusted keys must be mounted read-only at /etc/miracolix/trusted-keys")
    elif "secret" not in vols.get(m["name"], {}):
        problem(where, "the trusted-keys volume must be a Secret")

    # replicas, leader election, disruption budget, Lease rights
    pdbs = by_kind(docs, "PodDisruptionBudget")
    if replicas > 1 and not leader:
        problem(where, "replicas > 1 needs --leader-elect")
    if (replicas > 1) != bool(pdbs):
        problem(where, f"PodDisruptionBudget must exist exactly when replicas > 1 ({replicas})")
    strategy = spec.get("strategy", {}).get("type")
    if not leader and strategy != "Recreate":
        problem(where, "without leader election the strategy must be Recreate")
    lease_rules = [
        r for o in by_kind(docs, "Role") if o["metadata"].get("namespace") == ns
        for r in o.get("rules", []) if "leases" in r.get("resources", [])
    ]
    if leader != bool(lease_rules):
        problem(where, "a Lease Role in the operator's namespace exactly when --leader-elect")
    for o in docs:
        if o["kind"] in ("ClusterRole", "Role") and o["metadata"].get("namespace", ns) != ns:
            if any("leases" in r.get("resources", []) for r in o.get("rules", [])):
                problem(f"{path} {ident(o)}", "Lease rights outside the operator's namespace")
    for o in by_kind(docs, "ClusterRole"):
        if any("leases" in r.get("resources", []) for r in o.get("rules", [])):
            problem(f"{path} {ident(o)}", "Lease rights must be namespaced, not in a ClusterRole")

    # watched namespaces: a Role + RoleBinding in each, and no cluster-wide write on site kinds
    roles_in = {o["metadata"].get("namespace") for o in by_kind(docs, "Role")}
    bindings_in = {o["metadata"].get("namespace") for o in by_kind(docs, "RoleBinding")}
    for w in watched:
        if w not in roles_in or w not in bindings_in:
            problem(where, f"--namespace {w} without a Role and RoleBinding there")
    if watched:
        for o in by_kind(docs, "ClusterRole"):
            for r in o.get("rules", []):
                if set(r.get("resources", [])) & {"deployments", "persistentvolumeclaims", "dizsites"}:
                    problem(f"{path} {ident(o)}", "namespaced mode must not grant site rights (nor DizSite reads) cluster-wide")

    # nothing in RBAC may be a wildcard, and nobody gets Secrets
    for o in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
        for r in o.get("rules", []):
            flat = r.get("apiGroups", []) + r.get("resources", []) + r.get("verbs", [])
            if "*" in flat:
                problem(f"{path} {ident(o)}", f"wildcard in RBAC rule {r}")
            if "secrets" in r.get("resources", []):
                problem(f"{path} {ident(o)}", "the operator must not get rights on Secrets")

    # the NetworkPolicy, when present, selects the operator pod and opens only what it should
    for np in by_kind(docs, "NetworkPolicy"):
        w = f"{path} {ident(np)}"
        if any(selects(np, h) for h in hubs):
            continue  # the hub's, checked by check_hub
        if not selects(np, dep):
            problem(w, "podSelector does not select the operator pod")
        if sorted(np["spec"].get("policyTypes", [])) != ["Egress", "Ingress"]:
            problem(w, "policyTypes must be Ingress and Egress")
        ing_ports = [p.get("port") for r in np["spec"].get("ingress", []) for p in r.get("ports", [])]
        if ing_ports != ["metrics"]:
            problem(w, f"ingress must open only the metrics port, got {ing_ports}")
        for r in np["spec"].get("egress", []):
            if not r.get("ports"):
                problem(w, f"egress rule without ports: {r}")

    # every object the chart names exists: ServiceAccount, bindings' roles
    sa = pod.get("serviceAccountName")
    sas = {o["metadata"]["name"] for o in by_kind(docs, "ServiceAccount")}
    if sa not in sas:
        problem(where, f"serviceAccountName {sa} not rendered")
    roles = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
             for o in by_kind(docs, "ClusterRole") + by_kind(docs, "Role")}
    for b in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        ref = b["roleRef"]
        want_ns = "" if ref["kind"] == "ClusterRole" else b["metadata"].get("namespace", "")
        if (ref["kind"], want_ns, ref["name"]) not in roles:
            problem(f"{path} {ident(b)}", f"roleRef {ref['kind']}/{ref['name']} not rendered")
        for s in b.get("subjects", []):
            if s.get("kind") != "ServiceAccount" or s.get("name") != sa or s.get("namespace") != ns:
                problem(f"{path} {ident(b)}", f"subject is not the operator's ServiceAccount: {s}")


def check_hub(path, docs, dep):
    """The consortium hub (hub.enabled, manifests/hub/): restricted, no API token, one writer of
    its volume, every path it is given mounted from where it should be, only its two ports open."""
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    where = f"{path} Deployment/{dep['metadata']['name']}"
    c = pod["containers"][0]
    check_restricted(where, pod, c)
    if pod.get("automountServiceAccountToken") is not False:
        problem(where, "the hub needs no API token: automountServiceAccountToken must be false")
    sa = pod.get("serviceAccountName")
    for s in by_kind(docs, "ServiceAccount"):
        if s["metadata"]["name"] == sa and s.get("automountServiceAccountToken") is not False:
            problem(where, f"the hub's ServiceAccount {sa} must not automount a token")
    for b in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        if any(s.get("name") == sa for s in b.get("subjects", [])):
            problem(f"{path} {ident(b)}", "the hub must hold no RBAC rights")
    env = {e["name"]: e for e in c.get("env", [])}
    # PostgreSQL (HUB_DATABASE): the URL holds a password, so only from a Secret; then replicas
    # share the database. SQLite: one writer of the volume.
    pg = "HUB_DATABASE" in env
    if pg and "secretKeyRef" not in env["HUB_DATABASE"].get("valueFrom", {}):
        problem(where, "HUB_DATABASE (with its password) must come from a Secret (secretKeyRef)")
    if not pg and (spec.get("replicas", 1) != 1 or spec.get("strategy", {}).get("type") != "Recreate"):
        problem(where, "one writer of the hub's volume: replicas 1 and strategy Recreate")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if set(ports) != {"http", "ops"} or len(set(ports.values())) != 2:
        problem(where, f"ports must be http and ops on different numbers, got {ports}")
    for probe, path_ in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                         ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path_ or get.get("port") != "ops":
            problem(where, f"{probe} must GET {path_} on port ops")
    args = c.get("args", [])
    if args[:1] != ["hub"]:
        problem(where, f"args must start with the subcommand hub: {args}")
        return
    flags = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")
             and not args[i + 1].startswith("--")}
    for flag, port in (("--listen", "http"), ("--ops-listen", "ops")):
        if flags.get(flag, "").rsplit(":", 1)[-1] != str(ports.get(port)):
            problem(where, f"{flag} {flags.get(flag)} is not the container port {port} ({ports.get(port)})")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = c.get("volumeMounts", [])

    def source_of(file_path):
        best = None
        for m in mounts:
            mp = m["mountPath"].rstrip("/")
            if file_path == mp or file_path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"]):
                    best = m
        return best

    # flag -> (volume source kind, read-only)
    wanted = {"--state-dir": ("persistentVolumeClaim", False), "--sites": ("configMap", True),
              "--readers": ("secret", True), "--feed-dir": ("configMap", True),
              "--trusted-keys": ("secret", True), "--database-ca-file": ("configMap", True)}
    for flag, (kind, ro) in wanted.items():
        if flag not in flags:
            if flag == "--sites" or (flag == "--state-dir" and not pg):
                problem(where, f"the hub needs {flag}")
            continue
        m = source_of(flags[flag])
        if not m:
            problem(where, f"{flag} {flags[flag]} is on no mounted volume")
            continue
        if kind not in vols.get(m["name"], {}):
            problem(where, f"{flag} must come from a {kind} volume, not {vols.get(m['name'])}")
        if bool(m.get("readOnly")) != ro:
            problem(where, f"{flag}'s mount must {'' if ro else 'not '}be read-only")
    if ("--readers" in flags) == ("--public-read" in args):
        problem(where, "exactly one of --readers and --public-read")
    if ("--feed-dir" in flags) != ("--trusted-keys" in flags):
        problem(where, "--feed-dir needs --trusted-keys (the hub verifies what it serves)")
    if not any(m["mountPath"] == "/tmp" for m in mounts):
        problem(where, "a writable /tmp (emptyDir) for SQLite's temporary files on a read-only root")
    nps = [np for np in by_kind(docs, "NetworkPolicy") if selects(np, dep)]
    if by_kind(docs, "NetworkPolicy") and len(nps) != 1:
        problem(where, f"with NetworkPolicies on, exactly one must select the hub, found {len(nps)}")
    for np in nps:
        w = f"{path} {ident(np)}"
        if sorted(np["spec"].get("policyTypes", [])) != ["Egress", "Ingress"]:
            problem(w, "policyTypes must be Ingress and Egress")
        ing = [(p.get("port"), bool(r.get("from"))) for r in np["spec"].get("ingress", [])
               for p in r.get("ports", [])]
        if sorted(p for p, _ in ing) != ["http", "ops"] or ("ops", True) not in ing:
            problem(w, f"ingress must open only http and ops (ops for the scrapers only), got {ing}")
        for r in np["spec"].get("egress", []):
            if not r.get("ports"):
                problem(w, f"egress rule without ports: {r}")
        if not pg and np["spec"].get("egress"):
            problem(w, "with SQLite the hub calls nothing: no egress")
    services = [s for s in by_kind(docs, "Service")
                if s["spec"].get("selector") == spec["selector"]["matchLabels"]]
    if len(services) != 1:
        problem(where, f"exactly one Service must select the hub, found {len(services)}")
    for s in services:
        for p in s["spec"].get("ports", []):
            if p.get("targetPort") not in ports:
                problem(f"{path} {ident(s)}", f"targetPort {p.get('targetPort')} is no hub port")


def validate(version, files):
    tmp = tempfile.mkdtemp(prefix="chart-check-")
    builtin_files = []
    for i, path in enumerate(files):
        docs = load(path)
        builtin = []
        for o in docs:
            if (o.get("apiVersion"), o.get("kind")) in CUSTOM_KINDS:
                check_custom(path, o)
            else:
                builtin.append(o)
        out = os.path.join(tmp, f"{i}-{os.path.basename(path)}")
        with open(out, "w", encoding="utf-8") as f:
            yaml.safe_dump_all(builtin, f, sort_keys=False)
        builtin_files.append(out)
        check_invariants(path, docs)
        kinds = sorted({o["kind"] for o in docs})
        print(f"  {path}: {len(docs)} objects ({', '.join(kinds)})")
    kubernetes_validate(version, builtin_files)


# ----------------------------------------------------------------------------------------- compare


def rules_of(o):
    """RBAC rules as a set of atomic grants, so rule grouping and order do not matter."""
    out = set()
    for r in o.get("rules", []):
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    for n in r.get("resourceNames") or ["*any*"]:
                        out.add((g, res, v, n))
    return out


def pod_spec(dep):
    return json.loads(json.dumps(dep["spec"]["template"]["spec"], sort_keys=True))


def compare(helm_path, kust_path):
    helm, kust = load(helm_path), load(kust_path)
    kust_no_ns = [o for o in kust if o["kind"] != "Namespace"]
    hi = sorted(map(ident, helm), key=str)
    ki = sorted(map(ident, kust_no_ns), key=str)
    if hi != ki:
        problem("objects", f"helm renders {sorted(set(hi) - set(ki), key=str)} only, kustomize "
                           f"{sorted(set(ki) - set(hi), key=str)} only")
    print(f"  same objects: {len(hi)} ({', '.join(sorted({k for k, _, _ in hi}))}) + Namespace in kustomize")
    h = {ident(o): o for o in helm}
    k = {ident(o): o for o in kust_no_ns}
    n_rules = 0
    for key in sorted(set(h) & set(k), key=str):
        a, b = h[key], k[key]
        kind = key[0]
        if kind in ("ClusterRole", "Role"):
            ra, rb = rules_of(a), rules_of(b)
            n_rules += len(ra)
            if ra != rb:
                problem(f"{key}", f"RBAC differs: helm only {sorted(ra - rb)}, kustomize only {sorted(rb - ra)}")
        elif kind in ("ClusterRoleBinding", "RoleBinding"):
            if a["roleRef"] != b["roleRef"] or a["subjects"] != b["subjects"]:
                problem(f"{key}", "binding differs")
        elif kind == "Deployment":
            for field in ("replicas", "selector", "strategy", "revisionHistoryLimit"):
                if a["spec"].get(field) != b["spec"].get(field):
                    problem(f"{key}", f"spec.{field} differs: {a['spec'].get(field)} vs {b['spec'].get(field)}")
            if pod_spec(a) != pod_spec(b):
                problem(f"{key}", "pod spec differs:\n" + diff_lines(pod_spec(a), pod_spec(b)))
            if a["spec"]["template"]["metadata"].get("annotations") != \
                    b["spec"]["template"]["metadata"].get("annotations"):
                problem(f"{key}", "pod annotations differ")
        elif kind in ("Service", "NetworkPolicy"):
            if a["spec"] != b["spec"]:
                problem(f"{key}", "spec differs:\n" + diff_lines(a["spec"], b["spec"]))
        elif kind == "ServiceAccount":
            if a.get("automountServiceAccountToken") != b.get("automountServiceAccountToken"):
                problem(f"{key}", "automountServiceAccountToken differs")
    print(f"  same RBAC: {n_rules} atomic grants (apiGroup, resource, verb, resourceName)")
    print("  same Deployment pod spec, Service, NetworkPolicy, bindings")


def diff_lines(a, b):
    import difflib
    sa = json.dumps(a, indent=1, sort_keys=True).splitlines()
    sb = json.dumps(b, indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(sa, sb, "helm", "kustomize", lineterm="", n=2))


def main(argv):
    if len(argv) >= 3 and argv[1] == "validate":
        validate(argv[2], argv[3:])
    elif len(argv) == 4 and argv[1] == "compare":
        compare(argv[2], argv[3])
    else:
        sys.exit(__doc__)
    if problems:
        for p in problems:
            print(f"  FAIL {p}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
