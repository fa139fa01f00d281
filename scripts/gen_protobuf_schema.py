#!/usr/bin/env python3
"""Generates e2e/src/apiserver/protobuf_schema.json: for each protobuf message the test API
server decodes or encodes, its fields by tag with their JSON names and wire types.

Inputs (facts from Kubernetes, nothing hand-written):
- the prost-generated Kubernetes protobuf types of the `k8s-pb` crate (field tags, scalar
  types, repeated/map, message types), found with `cargo metadata`;
- the Kubernetes 1.33 OpenAPI definitions shipped by the PyPI package `kubernetes-validate`
  (the JSON names of the fields, and apiVersion/kind of each top-level type).

Run `make protobuf-schema` after bumping k8s-pb or the Kubernetes version; `--check` only
compares (e2e/tests/conformance_protobuf.rs runs it).
"""
import glob
import json
import os
import re
import subprocess
import sys

import kubernetes_validate

K8S_VERSION = "v1.33.0"
OUT = os.path.join(os.path.dirname(__file__), "..", "e2e", "src", "apiserver", "protobuf_schema.json")

# The kinds the test API server serves (e2e/src/apiserver/resources.rs), plus the options kinds
# client-go sends as bodies. CustomResourceDefinitions are left out: their schema types
# (JSONSchemaPropsOr*) do not map field by field; CRDs with a protobuf body get a 415.
ROOTS = [
    "io.k8s.api.core.v1.Namespace", "io.k8s.api.core.v1.ConfigMap", "io.k8s.api.core.v1.Secret",
    "io.k8s.api.core.v1.Service", "io.k8s.api.core.v1.ServiceAccount",
    "io.k8s.api.core.v1.PersistentVolumeClaim", "io.k8s.api.core.v1.Event", "io.k8s.api.core.v1.Node",
    "io.k8s.api.core.v1.Pod", "io.k8s.api.events.v1.Event", "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.StatefulSet", "io.k8s.api.apps.v1.ReplicaSet", "io.k8s.api.batch.v1.Job",
    "io.k8s.api.batch.v1.CronJob", "io.k8s.api.networking.v1.NetworkPolicy",
    "io.k8s.api.networking.v1.Ingress", "io.k8s.api.coordination.v1.Lease",
    "io.k8s.api.policy.v1.PodDisruptionBudget", "io.k8s.api.rbac.v1.Role",
    "io.k8s.api.rbac.v1.RoleBinding", "io.k8s.api.rbac.v1.ClusterRole",
    "io.k8s.api.rbac.v1.ClusterRoleBinding", "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.authentication.v1.SelfSubjectReview", "io.k8s.api.authentication.v1.TokenReview",
    "io.k8s.api.authentication.v1.TokenRequest",
    "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
    "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
    "io.k8s.api.authorization.v1.SubjectAccessReview",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
]
# Their lists (where the kind has one), for list responses, and Status (a delete's answer).
LISTS = [r + "List" for r in ROOTS if r.startswith("io.k8s.api.")]
ROOTS += ["io.k8s.apimachinery.pkg.apis.meta.v1.Status"]

# Rust module path of k8s-pb -> OpenAPI definition prefix.
PREFIXES = {
    "api": "io.k8s.api",
    "apimachinery": "io.k8s.apimachinery",
    "apiextensions_apiserver": "io.k8s.apiextensions-apiserver",
    "kube_aggregator": "io.k8s.kube-aggregator",
}

FIELD = re.compile(r"#\[prost\(([^]]*)\)\]\s*pub (?:r#)?(\w+):\s*([^;]*?),\s*(?=(?:///|#\[|pub |\}))", re.S)
# A struct's body: the lines up to the first that starts with `}` (empty structs are `{}`).
STRUCT = re.compile(r"pub struct (\w+) \{((?:\n(?!\}).*)*)\n?\}")


def k8s_pb_src():
    """k8s-pb's sources at the version Cargo.lock pins: in cargo's registry cache (no cargo run
    needed, so the freshness test can call this while cargo holds its locks), else where
    `cargo metadata` says."""
    lock = open(os.path.join(os.path.dirname(__file__), "..", "Cargo.lock")).read()
    m = re.search(r'name = "k8s-pb"\nversion = "([^"]+)"', lock)
    if not m:
        sys.exit("k8s-pb is not in Cargo.lock")
    version = m.group(1)
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = glob.glob(os.path.join(cargo_home, "registry", "src", "*", f"k8s-pb-{version}", "src"))
    if found:
        return found[0], version
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"], cwd=os.path.dirname(__file__)))
    for p in meta["packages"]:
        if p["name"] == "k8s-pb":
            return os.path.join(os.path.dirname(p["manifest_path"]), "src"), p["version"]
    sys.exit("k8s-pb is not in the workspace's dependency graph")


def definition_prefix(mod_path):
    head, *rest = mod_path
    return ".".join([PREFIXES[head]] + rest)


def resolve(type_text, mod_path):
    """The definition name of a message type as written in a field's Rust type."""
    # rustfmt writes multi-line generics with a trailing comma.
    t = re.sub(r",>", ">", re.sub(r"\s+", "", type_text))
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<", "Box<"):
        while t.startswith(wrapper):
            t = t[len(wrapper):-1]
    if "BTreeMap<" in t:
        t = t.split(",", 1)[1][:-1]
    parts = t.split("::")
    path = list(mod_path)
    while parts and parts[0] == "super":
        path.pop()
        parts.pop(0)
    return definition_prefix(path + parts[:-1]) + "." + parts[-1]


def norm(name):
    return name.replace("_", "").lower()


def main():
    src, version = k8s_pb_src()
    defs = json.load(open(os.path.join(
        os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema",
        K8S_VERSION + "-local", "_definitions.json")))["$defs"]
    defs_ci = {n.lower(): d for n, d in defs.items()}
    messages = {}
    for root, _, files in os.walk(src):
        if "mod.rs" not in files:
            continue
        mod_path = os.path.relpath(root, src).split(os.sep)
        if mod_path[0] not in PREFIXES:
            continue
        text = open(os.path.join(root, "mod.rs")).read()
        for name, body in STRUCT.findall(text):
            fields = []
            for attr, rust, type_text in FIELD.findall(body + "\n}"):
                parts = [p.strip() for p in attr.split(",")]
                tag = int(re.search(r'tag\s*=\s*"(\d+)"', attr).group(1))
                kind = parts[0].split("=")[0].strip()
                if kind == "btree_map":
                    value = attr.split('"')[1].split(",")[1].strip()
                    label = "map"
                    kind = value
                else:
                    label = "rep" if "repeated" in parts else "opt"
                ref = resolve(type_text, mod_path) if kind == "message" else None
                fields.append((tag, rust, kind, label, ref))
            messages[definition_prefix(mod_path) + "." + name] = fields
    ROOTS.extend(name for name in LISTS if name in messages)
    out = {"k8s-pb": version, "kubernetes": K8S_VERSION, "messages": {}, "kinds": {}}
    todo = list(ROOTS)
    # An embedded struct has no definition of its own: its JSON names are its parent's.
    inline_props = {}
    while todo:
        name = todo.pop()
        if name in out["messages"]:
            continue
        if name not in messages:
            sys.exit(f"{name} is not in k8s-pb {version}")
        # k8s-pb names types in Rust case (`HttpGetAction` for `HTTPGetAction`).
        props = defs_ci.get(name.lower(), {}).get("properties", {}) or inline_props.get(name, {})
        by_norm = {norm(p): p for p in props}
        fields = {}
        for tag, rust, kind, label, ref in messages[name]:
            # Fields newer than the OpenAPI version: lowerCamelCase of the Rust name.
            camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), rust)
            json_name = by_norm.get(norm(rust))
            # The embedded struct's fields, by normalised name (it may have no definition of
            # its own: the OpenAPI generator inlines it).
            embedded = {norm(f[1]) for f in messages.get(ref, [])} if ref else set()
            # (Fields newer than the OpenAPI version are not among the parent's properties.)
            if json_name is None and embedded and len(embedded & set(by_norm)) >= 0.8 * len(embedded):
                # A Go struct embedded with `json:",inline"` (Probe's ProbeHandler, Volume's
                # VolumeSource): a message in protobuf, its fields flattened in JSON.
                json_name = ""
                inline_props[ref] = props
            entry = [camel if json_name is None else json_name, kind, label]
            if ref:
                entry.append(ref)
                todo.append(ref)
            fields[str(tag)] = entry
        out["messages"][name] = fields
        gv = props.get("apiVersion", {}).get("enum")
        kind = props.get("kind", {}).get("enum")
        if name in ROOTS and gv and kind:
            out["kinds"][f"{gv[0]}/{kind[0]}"] = name
        elif name in ROOTS and kind:
            # Status and DeleteOptions are written in every group version.
            out["kinds"][kind[0]] = name
    out["messages"] = dict(sorted(out["messages"].items()))
    out["kinds"] = dict(sorted(out["kinds"].items()))
    text = json.dumps(out, indent=0, separators=(",", ":")) + "\n"
    if "--check" in sys.argv:
        if open(OUT).read() != text:
            sys.exit(f"{os.path.normpath(OUT)} is out of date: run make protobuf-schema")
        print(f"{os.path.normpath(OUT)} is current")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print(f"{len(out['messages'])} messages, {len(out['kinds'])} kinds -> {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
