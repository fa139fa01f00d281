#!/usr/bin/env python3
"""`make image-test`: the operator image as a cluster would run it, without a container runtime.

Reads the OCI archive that `make image` wrote (target/image/miracolix-operator-<version>-linux-<arch>.oci.tar)
with nothing but tarfile and json — an implementation independent of buildah, which wrote it — and
checks:

  1. the layout: index -> manifest -> config and layers, every blob's digest and size as declared;
  2. the config: user 65532:65532, entrypoint and cmd, the exposed ports are exactly the container
     ports of manifests/base/deployment.yaml, os/arch, the org.opencontainers.image.* labels
     (version = Cargo.toml, revision = git HEAD, licenses and source = Cargo.toml, created RFC 3339);
  3. the root filesystem: exactly the expected files with their owners and modes, no shell or any
     other program, the binary is statically linked (no ELF interpreter);
  4. the size budget (docs/image.md);
  5. the binary runs from the unpacked root, read-only, as uid/gid 65532, with no network and a
     clean environment (bubblewrap): `--version` prints the version and the revision, `run --help`,
     and `render` of an example site prints the objects the operator would apply;
  6. the Dockerfile describes the same image (same user, entrypoint, cmd, ports, label keys, files).

usage: scripts/image_test.py [ARCHIVE]
"""

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = "/usr/local/bin/miracolix-operator"
USER = "65532:65532"
# Budget for the compressed image (the archive) and the unpacked root; today's figures are in
# docs/image.md. A budget exceeded is a decision to make (strip something, or raise it there).
ARCHIVE_BUDGET = 16 * 1024 * 1024
ROOTFS_BUDGET = 40 * 1024 * 1024
LABELS = ("title", "description", "source", "url", "documentation", "vendor", "licenses",
          "version", "revision", "created")
# path -> (type, mode, uid): everything the image holds.
EXPECTED_FILES = {
    "etc": ("d", 0o755, 0),
    "etc/group": ("f", 0o644, 0),
    "etc/nsswitch.conf": ("f", 0o644, 0),
    "etc/passwd": ("f", 0o644, 0),
    "etc/ssl": ("d", 0o755, 0),
    "etc/ssl/certs": ("d", 0o755, 0),
    "etc/ssl/certs/ca-certificates.crt": ("f", 0o644, 0),
    "home": ("d", 0o755, 0),
    "home/nonroot": ("d", 0o700, 65532),
    "tmp": ("d", 0o1777, 0),
    "usr": ("d", 0o755, 0),
    "usr/local": ("d", 0o755, 0),
    "usr/local/bin": ("d", 0o755, 0),
    "usr/local/bin/miracolix-operator": ("f", 0o755, 0),
}
SHELLS = {"sh", "bash", "dash", "ash", "busybox", "zsh", "ksh"}

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
        print(f"FAIL: {message}", file=sys.stderr)
    return ok


def step(message):
    print(f"== {message}")


def cargo_field(field):
    text = open(os.path.join(ROOT, "Cargo.toml")).read()
    section = text.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    m = re.search(rf'^{field}\s*=\s*"([^"]*)"', section, re.M)
    return m.group(1) if m else None


def machine_arch():
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[os.uname().machine]


def git_head():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


class Archive:
    """An OCI image layout in a tar: blobs by digest, each verified against its descriptor."""

    def __init__(self, path):
        self.tar = tarfile.open(path)
        self.names = set(self.tar.getnames())

    def read(self, name):
        member = self.tar.extractfile(name)
        if member is None:
            raise SystemExit(f"image-test: {name} is not a file in the archive")
        return member.read()

    def blob(self, descriptor):
        algorithm, digest = descriptor["digest"].split(":", 1)
        data = self.read(f"blobs/{algorithm}/{digest}")
        check(algorithm == "sha256" and hashlib.sha256(data).hexdigest() == digest,
              f"blob {descriptor['digest']}: content does not match its digest")
        check(len(data) == descriptor["size"],
              f"blob {descriptor['digest']}: {len(data)} bytes, descriptor says {descriptor['size']}")
        return data


def elf_has_interpreter(data):
    """True when an ELF executable names a dynamic loader (PT_INTERP), i.e. is not static."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise SystemExit("image-test: the binary is not a 64-bit little-endian ELF file")
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off:off + 4], "little") == 3:  # PT_INTERP
            return True
    return False


def deployment_ports():
    text = open(os.path.join(ROOT, "manifests/base/deployment.yaml")).read()
    return {f"{p}/tcp" for p in re.findall(r"containerPort:\s*(\d+)", text)}


def check_config(config, arch):
    step("config: user, entrypoint, ports, platform")
    c = config.get("config", {})
    check(c.get("User") == USER, f"User is {c.get('User')!r}, expected {USER!r}")
    check(c.get("Entrypoint") == [BINARY], f"Entrypoint is {c.get('Entrypoint')!r}")
    check(c.get("Cmd") == ["run"], f"Cmd is {c.get('Cmd')!r}, expected ['run']")
    ports = set(c.get("ExposedPorts", {}))
    check(ports == deployment_ports(),
          f"ExposedPorts {sorted(ports)} are not the Deployment's container ports {sorted(deployment_ports())}")
    check(config.get("os") == "linux" and config.get("architecture") == arch,
          f"platform {config.get('os')}/{config.get('architecture')}, expected linux/{arch}")
    check(not any(e.startswith(("LD_", "SSL_")) for e in c.get("Env") or []),
          f"unexpected environment {c.get('Env')}")

    step("config: org.opencontainers.image.* labels")
    labels = c.get("Labels") or {}
    for key in LABELS:
        check(labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key} is missing")
    version = cargo_field("version")
    check(labels.get("org.opencontainers.image.version") == version,
          f"label version {labels.get('org.opencontainers.image.version')!r} is not Cargo.toml's {version!r}")
    check(labels.get("org.opencontainers.image.licenses") == cargo_field("license"), "label licenses")
    check(labels.get("org.opencontainers.image.source") == cargo_field("repository"), "label source")
    head = os.environ.get("MIRACOLIX_GIT_REVISION") or git_head()
    if head:
        check(labels.get("org.opencontainers.image.revision") == head,
              f"label revision {labels.get('org.opencontainers.image.revision')!r} is not HEAD {head}")
    created = labels.get("org.opencontainers.image.created", "")
    try:
        datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        check(False, f"label created {created!r} is not an RFC 3339 UTC time")
    return labels


def unpack(archive, manifest, rootfs):
    """Applies the layers in order (whiteouts included) into rootfs; returns the unpacked size."""
    step("root filesystem: files, owners, modes, no shell")
    seen = {}
    for layer in manifest["layers"]:
        check(layer["mediaType"] in ("application/vnd.oci.image.layer.v1.tar",
                                     "application/vnd.oci.image.layer.v1.tar+gzip"),
              f"layer media type {layer['mediaType']}")
        with tarfile.open(fileobj=io.BytesIO(archive.blob(layer))) as tar:
            for m in tar.getmembers():
                name = os.path.normpath(m.name.lstrip("./")) if m.name not in ("./", ".") else "."
                if name == ".":
                    continue
                check(not name.startswith(".."), f"layer entry escapes the root: {m.name}")
                base = os.path.basename(name)
                if base.startswith(".wh."):
                    seen.pop(os.path.join(os.path.dirname(name), base[4:]), None)
                    continue
                seen[name] = m
                # Our own archive, checked entry by entry above: extracted as it is (owners too,
                # when running as root), which the stricter default filters would change.
                trusted = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}
                tar.extract(m, rootfs, numeric_owner=True, **trusted)
    actual = {}
    for name, m in seen.items():
        kind = "d" if m.isdir() else "f" if m.isfile() else "l" if m.issym() or m.islnk() else "?"
        actual[name] = (kind, stat.S_IMODE(m.mode), m.uid)
    for name in sorted(set(actual) | set(EXPECTED_FILES)):
        check(actual.get(name) == EXPECTED_FILES.get(name),
              f"/{name}: in the image {actual.get(name)}, expected {EXPECTED_FILES.get(name)} (type, mode, uid)")
    for name in actual:
        check(os.path.basename(name) not in SHELLS, f"/{name}: a shell in the image")
    check(not elf_has_interpreter(open(os.path.join(rootfs, BINARY.lstrip("/")), "rb").read()),
          f"{BINARY} names an ELF interpreter: it is not statically linked")
    passwd = open(os.path.join(rootfs, "etc/passwd")).read()
    check(re.search(r"^nonroot:x:65532:65532:", passwd, re.M), "/etc/passwd has no nonroot 65532")
    return sum(m.size for m in seen.values() if m.isfile())


def sandbox(rootfs, args):
    """Runs the image's binary: root read-only, uid/gid 65532, own namespaces (no network), empty
    environment, the examples read-only at /tmp (a directory the image has: the root is read-only,
    so a mount point cannot be created)."""
    cmd = ["bwrap", "--ro-bind", rootfs, "/", "--ro-bind", os.path.join(ROOT, "examples"), "/tmp",
           "--unshare-all", "--uid", "65532", "--gid", "65532", "--cap-drop", "ALL",
           "--clearenv", "--chdir", "/", "--die-with-parent", "--new-session",
           BINARY, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def check_runs(rootfs, revision):
    step("the binary, read-only root, uid 65532, no network (bwrap)")
    version = cargo_field("version")
    out = sandbox(rootfs, ["--version"])
    expected = f"miracolix-operator {version} (rev {revision[:12]})"
    check(out.returncode == 0 and out.stdout.strip() == expected,
          f"--version: exit {out.returncode}, printed {out.stdout.strip()!r}, expected {expected!r}; {out.stderr.strip()}")
    print(f"  --version: {out.stdout.strip()}")
    out = sandbox(rootfs, ["run", "--help"])
    check(out.returncode == 0 and "--trusted-keys" in out.stdout,
          f"run --help: exit {out.returncode}: {out.stderr.strip()[:500]}")
    out = sandbox(rootfs, ["render", "-f", "/tmp/20-site-erlangen.yaml",
                           "--release", "/tmp/10-release-miracolix-2026.1.yaml",
                           "--trusted-keys", "/tmp/trusted-keys"])
    check(out.returncode == 0 and "kind: Deployment" in out.stdout,
          f"render of examples/20-site-erlangen.yaml: exit {out.returncode}: {out.stderr.strip()[:500]}")
    print(f"  render examples/20-site-erlangen.yaml: {out.stdout.count('kind: ')} objects")
    # The same refusal as outside the image: a missing file is named, nothing on standard output.
    out = sandbox(rootfs, ["render", "-f", "/tmp/missing.yaml", "--release",
                           "/tmp/10-release-miracolix-2026.1.yaml", "--trusted-keys", "/tmp/trusted-keys"])
    check(out.returncode == 2 and not out.stdout and "missing.yaml" in out.stderr,
          f"render of a missing file: exit {out.returncode}, stderr {out.stderr.strip()[:300]!r}")


def dockerfile_final_stage():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    # Join continuation lines, drop comments.
    text = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    return text.split("\nFROM scratch", 1)[1]


def check_dockerfile(labels):
    step("the Dockerfile builds the same image (user, entrypoint, cmd, ports, labels, files)")
    final = dockerfile_final_stage()
    directive = lambda name: [l.split(None, 1)[1].strip() for l in final.splitlines()
                              if l.split(None, 1)[:1] == [name]]
    check(directive("USER") == [USER], f"Dockerfile USER {directive('USER')}")
    check(directive("ENTRYPOINT") == [json.dumps([BINARY])], f"Dockerfile ENTRYPOINT {directive('ENTRYPOINT')}")
    check(directive("CMD") == ['["run"]'], f"Dockerfile CMD {directive('CMD')}")
    check(directive("WORKDIR") == ["/home/nonroot"], f"Dockerfile WORKDIR {directive('WORKDIR')}")
    exposed = set(" ".join(directive("EXPOSE")).split())
    check(exposed == deployment_ports(), f"Dockerfile EXPOSE {sorted(exposed)}")
    label_keys = set(re.findall(r"(org\.opencontainers\.image\.[a-z]+)=", " ".join(directive("LABEL"))))
    check(label_keys == {k for k in labels if k.startswith("org.opencontainers.image.")},
          f"Dockerfile labels {sorted(label_keys)} differ from the image's")
    static = {k: v for k, v in labels.items() if k.rsplit(".", 1)[1] not in ("version", "revision", "created")}
    for key, value in static.items():
        check(f'{key}="{value}"' in final, f"Dockerfile label {key} is not {value!r}")
    check(f"ARG VERSION={cargo_field('version')}" in final, "Dockerfile ARG VERSION is not Cargo.toml's version")
    for path in ("/etc/", "/etc/ssl/certs/ca-certificates.crt", "/usr/local/bin/miracolix-operator"):
        check(any(l.startswith("COPY") and l.endswith(" " + path) for l in final.splitlines()),
              f"Dockerfile does not COPY {path}")
    for name in ("passwd", "group", "nsswitch.conf"):
        check(f"image/rootfs/etc/{name}" in final, f"Dockerfile does not copy image/rootfs/etc/{name}")
    # The build stage must see every workspace member, or `cargo build --locked` fails to load the
    # workspace (the gate became a member and a dependency of the operator binary).
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    build = text.split("\nFROM scratch", 1)[0]
    manifest = open(os.path.join(ROOT, "Cargo.toml")).read()
    members = re.findall(r'"([^"]+)"', re.search(r"^members\s*=\s*\[([^\]]*)\]", manifest, re.M).group(1))
    for member in members:
        check(re.search(rf"^COPY {re.escape(member)} \./{re.escape(member)}$", build, re.M) is not None,
              f"Dockerfile's build stage does not COPY the workspace member {member}")


def main():
    version, arch = cargo_field("version"), machine_arch()
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "target/image", f"miracolix-operator-{version}-linux-{arch}.oci.tar")
    if not os.path.exists(path):
        sys.exit(f"image-test: {path} is missing: run `make image` first")
    if shutil.which("bwrap") is None:
        sys.exit("image-test: bwrap (bubblewrap) is missing: run scripts/install-tools.sh (make tools)")

    step(f"layout of {os.path.relpath(path, ROOT)}")
    archive = Archive(path)
    layout = json.loads(archive.read("oci-layout"))
    check(layout.get("imageLayoutVersion") == "1.0.0", f"oci-layout {layout}")
    index = json.loads(archive.read("index.json"))
    check(len(index["manifests"]) == 1, f"index.json has {len(index['manifests'])} manifests, expected 1")
    ref = index["manifests"][0].get("annotations", {}).get("org.opencontainers.image.ref.name", "")
    check(ref.endswith(f":{version}"), f"the archive's reference {ref!r} is not tagged {version}")
    manifest = json.loads(archive.blob(index["manifests"][0]))
    check(manifest.get("mediaType") == "application/vnd.oci.image.manifest.v1+json",
          f"manifest media type {manifest.get('mediaType')}")
    config = json.loads(archive.blob(manifest["config"]))
    check(len(manifest["layers"]) == 1, f"{len(manifest['layers'])} layers, expected 1")

    labels = check_config(config, arch)
    with tempfile.TemporaryDirectory(prefix="miracolix-image-test-") as rootfs:
        unpacked = unpack(archive, manifest, rootfs)
        size = os.path.getsize(path)
        step("size budget")
        print(f"  archive {size / 2**20:.1f} MiB (budget {ARCHIVE_BUDGET / 2**20:.0f} MiB), "
              f"unpacked {unpacked / 2**20:.1f} MiB (budget {ROOTFS_BUDGET / 2**20:.0f} MiB)")
        check(size <= ARCHIVE_BUDGET, f"the archive is {size} bytes, over the budget of {ARCHIVE_BUDGET}")
        check(unpacked <= ROOTFS_BUDGET, f"the root filesystem is {unpacked} bytes, over {ROOTFS_BUDGET}")
        revision = labels.get("org.opencontainers.image.revision", "")
        check_runs(rootfs, revision)
    check_dockerfile(labels)

    sbom = os.path.splitext(os.path.splitext(path)[0])[0] + ".cdx.json"
    step("SBOM next to the archive")
    if check(os.path.exists(sbom), f"{sbom} is missing"):
        bom = json.load(open(sbom))
        check(bom.get("bomFormat") == "CycloneDX" and bom["metadata"]["component"]["version"] == version,
              f"{sbom}: not the CycloneDX SBOM of version {version}")

    if failures:
        print(f"image-test: 0 passed, {len(failures)} failed", file=sys.stderr)
        sys.exit(1)
    print("image-test: all checks passed")


if __name__ == "__main__":
    main()
