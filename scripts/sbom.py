#!/usr/bin/env python3
"""CycloneDX 1.5 SBOM of the operator image: `make sbom` writes target/sbom/miracolix-operator.cdx.json;
`make image` writes one next to each image archive (target/image/*.cdx.json).

What the image (scripts/image.sh, docs/image.md) contains, and nothing else:
  - every crate compiled into the operator binary: the normal (non-dev, non-build) dependency
    graph of the `miracolix-operator` package for the image's target (x86_64-unknown-linux-gnu or
    aarch64-unknown-linux-gnu), as `cargo metadata --filter-platform` resolves it from Cargo.lock,
    kept to what `cargo tree -e normal --target` says cargo compiles (metadata also lists
    optional dependencies named only in weak `dep?/feature` features),
    each with its version, package URL (purl), license expression and the SHA-256 checksum
    Cargo.lock pins;
  - the Debian packages whose files are in the image: glibc, linked statically into the binary
    (from libc6-dev), and the CA bundle (ca-certificates), at the versions dpkg reports on the
    machine that builds.
Build-only crates (build scripts' dependencies, the test API server, dev-dependencies) do not reach
the image and are not listed; `cargo deny` (make deny) judges those too.

The output is deterministic (no timestamp; the serial number is derived from the content), so a
rebuild from the same commit on the same machine gives the same file. Why a script and not
cargo-cyclonedx: docs/dependencies-supply-chain.md. Needs python3 (stdlib only), cargo and
dpkg-query; runs offline once `cargo fetch --locked` has run.

usage: scripts/sbom.py [--target TRIPLE] [-o FILE]
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from urllib.parse import quote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "miracolix-operator"
DEFAULT_TARGET = "x86_64-unknown-linux-gnu"
# Debian packages whose files the image holds: (package, why). scripts/image.sh puts them there.
DEBIAN_PACKAGES = (
    ("libc6-dev", "glibc, linked statically into the operator binary (-C target-feature=+crt-static)"),
    ("ca-certificates", "/etc/ssl/certs/ca-certificates.crt"),
)
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def cargo_metadata(target):
    cargo = os.environ.get("CARGO", "cargo")
    out = subprocess.run(
        [cargo, "metadata", "--format-version", "1", "--locked", "--offline",
         "--filter-platform", target],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def cargo_tree(target):
    """(name, version) of every package cargo compiles into the operator for `target` (the normal
    dependency tree, host-compiled proc macros included). `cargo metadata` over-approximates:
    an optional dependency named only in a weak feature (`dep?/feature`, e.g. x509-cert's
    `tls_codec?/std` through tokio-postgres-rustls) is listed as an edge, and the features it
    would enable leak into other packages (zeroize's `derive`), although cargo compiles neither."""
    cargo = os.environ.get("CARGO", "cargo")
    out = subprocess.run(
        [cargo, "tree", "-p", PACKAGE, "-e", "normal", "--target", target, "--prefix", "none",
         "--locked", "--offline"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    compiled = set()
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].startswith("v"):
            compiled.add((words[0], words[1][1:]))
    return compiled


def lock_checksums():
    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    return {(p["name"], p["version"]): p.get("checksum") for p in lock.get("package", [])}


def debian_packages():
    """(name, version, arch, source, why) of each package in DEBIAN_PACKAGES, as dpkg reports it."""
    out = []
    for name, why in DEBIAN_PACKAGES:
        try:
            fields = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}\t${Architecture}\t${source:Package}", name],
                check=True, capture_output=True, text=True,
            ).stdout.split("\t")
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit(f"sbom: cannot ask dpkg for {name} ({e}): the image is built on Debian "
                     "(make tools installs the packages)")
        version, arch, source = fields
        out.append((name, version, arch, source or name, why))
    return out


def debian_release():
    """`12` on bookworm: the distro qualifier of a deb purl."""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("VERSION_ID="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def purl_cargo(name, version):
    return f"pkg:cargo/{quote(name)}@{quote(version)}"


def purl_deb(name, version, arch, release):
    qualifiers = f"arch={quote(arch)}"
    if release:
        qualifiers += f"&distro=debian-{quote(release)}"
    return f"pkg:deb/debian/{quote(name)}@{quote(version)}?{qualifiers}"


def host_triple():
    rustc = os.environ.get("RUSTC", "rustc")
    out = subprocess.run([rustc, "-vV"], check=True, capture_output=True, text=True).stdout
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("host: "))


def build(target):
    meta = cargo_metadata(target)
    # Proc macros (serde_derive, pest_derive, …) and their dependencies are compiled for the
    # machine that builds, not for the image's target, so their dependencies are resolved for
    # the host, as cargo itself (and `cargo tree --target`) does.
    host = cargo_metadata(host_triple())
    checksums = lock_checksums()
    packages = {p["id"]: p for p in host["packages"] + meta["packages"]}
    nodes = {
        "target": {n["id"]: n for n in meta["resolve"]["nodes"]},
        "host": {n["id"]: n for n in host["resolve"]["nodes"]},
    }
    root_id = next(i for i in meta["workspace_members"] if packages[i]["name"] == PACKAGE)

    def is_proc_macro(pid):
        return any("proc-macro" in t["kind"] for t in packages[pid]["targets"])

    # Walk the normal dependencies from the operator package.
    def normal_deps(node_id, platform):
        for d in nodes[platform][node_id]["deps"]:
            if any(k["kind"] is None for k in d["dep_kinds"]):
                yield d["pkg"]

    seen, stack, edges = set(), [(root_id, "target")], {}
    while stack:
        current, platform = stack.pop()
        if (current, platform) in seen:
            continue
        seen.add((current, platform))
        below = "host" if platform == "host" or is_proc_macro(current) else platform
        deps = sorted(set(normal_deps(current, below)))
        edges[current] = sorted(set(edges.get(current, [])) | set(deps))
        stack.extend((d, below) for d in deps)
    # Only what cargo compiles (see cargo_tree): the walk above follows metadata's edges.
    compiled = cargo_tree(target)
    seen = {pid for pid, _ in seen
            if pid == root_id or (packages[pid]["name"], packages[pid]["version"]) in compiled}
    edges = {pid: [d for d in deps if d in seen] for pid, deps in edges.items() if pid in seen}

    def ref(pid):
        p = packages[pid]
        return purl_cargo(p["name"], p["version"])

    components = []
    for pid in sorted(seen - {root_id}, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pid]
        # Workspace crates (path dependencies such as the shared validator) are first-party
        # code built from this repository: listed, without a registry checksum. Anything else
        # must come from crates.io.
        first_party = p.get("source") is None and os.path.realpath(p["manifest_path"]).startswith(
            os.path.realpath(ROOT) + os.sep)
        if p.get("source") != CRATES_IO and not first_party:
            sys.exit(f"sbom: {p['name']} {p['version']} does not come from crates.io ({p.get('source')})")
        c = {
            "type": "library",
            "bom-ref": ref(pid),
            "name": p["name"],
            "version": p["version"],
            "purl": ref(pid),
            "scope": "required",
        }
        checksum = checksums.get((p["name"], p["version"]))
        if checksum:
            c["hashes"] = [{"alg": "SHA-256", "content": checksum}]
        if p.get("license"):
            c["licenses"] = [{"expression": p["license"]}]
        if p.get("repository"):
            c["externalReferences"] = [{"type": "vcs", "url": p["repository"]}]
        components.append(c)

    release = debian_release()
    deb_refs = []
    for name, version, arch, source, why in debian_packages():
        deb_ref = purl_deb(name, version, arch, release)
        deb_refs.append(deb_ref)
        components.append({
            "type": "library",
            "bom-ref": deb_ref,
            "name": name,
            "version": version,
            "purl": deb_ref,
            "description": why,
            "properties": [{"name": "debian:source", "value": source}],
        })

    root = packages[root_id]
    root_ref = f"pkg:cargo/{PACKAGE}@{root['version']}"
    dependencies = [{"ref": root_ref, "dependsOn": [ref(d) for d in edges[root_id]] + deb_refs}]
    for pid in sorted(seen - {root_id}, key=ref):
        dependencies.append({"ref": ref(pid), "dependsOn": [ref(d) for d in edges[pid]]})

    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "scripts/sbom.py",
                                      "description": "cargo metadata + Cargo.lock to CycloneDX"}]},
            "component": {
                "type": "application",
                "bom-ref": root_ref,
                "name": PACKAGE,
                "version": root["version"],
                "purl": root_ref,
                "licenses": [{"expression": root.get("license") or "Apache-2.0"}],
                "properties": [{"name": "cargo:target", "value": target}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    }
    # A serial number derived from the content: the same inputs give the same file.
    digest_of_content = hashlib.sha256(json.dumps(bom, sort_keys=True).encode()).hexdigest()
    bom["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, digest_of_content)}"
    return bom


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("-o", "--output", default="-")
    args = parser.parse_args()
    text = json.dumps(build(args.target), indent=2, sort_keys=False) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text)
        print(f"sbom: {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
