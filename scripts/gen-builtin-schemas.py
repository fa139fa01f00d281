#!/usr/bin/env python3
"""Generates e2e/src/apiserver/builtin/schemas.json: the structure of every built-in kind the test
API server serves, from Kubernetes' published OpenAPI schemas as the PyPI package
kubernetes-validate ships them (the same source chart-test validates the chart against).

    python3 scripts/gen-builtin-schemas.py           # rewrite the file
    python3 scripts/gen-builtin-schemas.py --check   # exit 1 if the file is not current

The served kinds are read from the BUILTINS table of e2e/src/apiserver/resources.rs, so adding a
row there and re-running this script is all a new kind needs. CustomResourceDefinitions are left
out: the server validates them with apiextensions' own rules.

The output is a compact structural schema per definition, the dialect the server's validator
(miracolix-validation) already speaks for CRDs:
  * descriptions, patch strategies and list types are dropped (kube-apiserver does not check
    list types of built-in kinds; its Go validation finds duplicates where they matter);
  * `type: [T, "null"]` becomes `type: T` (a null decodes to the zero value, the validator
    drops nulls before checking);
  * references stay references (`{"$ref": "core.v1.PodSpec"}`, resolved when loaded) so the pod
    template is stored once, not once per workload kind;
  * Quantity becomes `{"x-quantity": true}` (parsed and canonicalised by the server), IntOrString
    `x-kubernetes-int-or-string`, RawExtension and FieldsV1 free-form objects, Time a date-time;
  * each object definition keeps its Go type name as `x-go` for the decode error message
    (`json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type
    int32`).
"""

import json
import os
import re
import sys

import kubernetes_validate

K8S_VERSION = "1.33.0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESOURCES = os.path.join(ROOT, "e2e/src/apiserver/resources.rs")
OUT = os.path.join(ROOT, "e2e/src/apiserver/builtin/schemas.json")

SPECIAL = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"x-quantity": True},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"x-kubernetes-int-or-string": True},
    "io.k8s.apimachinery.pkg.runtime.RawExtension": {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"},
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": {"type": "string", "format": "date-time"},
}
KEEP_FORMATS = {"int32", "int64", "byte", "date-time", "double"}


def short(name):
    """io.k8s.api.apps.v1.DeploymentSpec -> apps.v1.DeploymentSpec."""
    for prefix in ("io.k8s.apimachinery.pkg.apis.", "io.k8s.api."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def served_kinds():
    rows = re.findall(
        r'b\("([^"]*)", "([^"]*)", "[^"]*", "([^"]*)"', open(RESOURCES, encoding="utf-8").read()
    )
    return [(g, v, k) for g, v, k in rows if g != "apiextensions.k8s.io"]


def load_definitions():
    base = os.path.join(
        os.path.dirname(kubernetes_validate.__file__),
        "kubernetes-json-schema",
        f"v{K8S_VERSION}-local",
        "_definitions.json",
    )
    with open(base, encoding="utf-8") as f:
        return json.load(f)["$defs"]


def definition_for(defs, group, version, kind):
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            if (gvk.get("group", ""), gvk["version"], gvk["kind"]) == (group, version, kind):
                return name
    sys.exit(f"gen-builtin-schemas: no schema for {group}/{version} {kind}")


def convert(node, wanted):
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in SPECIAL:
            return dict(SPECIAL[name])
        wanted.add(name)
        return {"$ref": short(name)}
    out = {}
    t = node.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    if t:
        out["type"] = t
    if node.get("format") in KEEP_FORMATS:
        out["format"] = node["format"]
    if "properties" in node:
        out["properties"] = {k: convert(v, wanted) for k, v in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = convert(node["additionalProperties"], wanted)
    if "items" in node:
        out["items"] = convert(node["items"], wanted)
    if node.get("required"):
        out["required"] = node["required"]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def generate():
    defs = load_definitions()
    kinds = {}
    wanted = set()
    for group, version, kind in served_kinds():
        name = definition_for(defs, group, version, kind)
        kinds[f"{group}/{version}/{kind}" if group else f"{version}/{kind}"] = short(name)
        wanted.add(name)
    out = {}
    done = set()
    while wanted - done:
        name = sorted(wanted - done)[0]
        done.add(name)
        converted = convert(defs[name], wanted)
        if converted.get("type") == "object" and "properties" in converted:
            converted["x-go"] = name.rsplit(".", 1)[-1]
        out[short(name)] = converted
    lines = [
        "{",
        '"$comment": '
        + json.dumps(
            f"Generated by scripts/gen-builtin-schemas.py from kubernetes-validate's Kubernetes "
            f"v{K8S_VERSION} OpenAPI schemas; do not edit, re-run the script."
        )
        + ",",
        '"kinds": ' + json.dumps(kinds, sort_keys=True, separators=(",", ":")) + ",",
        '"definitions": {',
    ]
    names = sorted(out)
    for i, name in enumerate(names):
        comma = "," if i + 1 < len(names) else ""
        lines.append(
            json.dumps(name) + ":" + json.dumps(out[name], sort_keys=True, separators=(",", ":")) + comma
        )
    lines += ["}", "}", ""]
    return "\n".join(lines)


def main():
    text = generate()
    if "--check" in sys.argv[1:]:
        current = open(OUT, encoding="utf-8").read() if os.path.exists(OUT) else ""
        if current != text:
            sys.exit(f"{os.path.relpath(OUT, ROOT)} is not current: run python3 scripts/gen-builtin-schemas.py")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
