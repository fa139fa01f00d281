#!/usr/bin/env bash
# `make image`: the operator image as an OCI archive, built without a container engine.
#
#   target/image/miracolix-operator-<version>-linux-<arch>.oci.tar   the image (OCI image layout, tar)
#   target/image/miracolix-operator-<version>-linux-<arch>.cdx.json  its CycloneDX SBOM (scripts/sbom.py)
#   target/image/miracolix-operator-<version>-linux-<arch>.digest    the manifest digest (sha256:…)
#
# What goes in (docs/image.md says why): one layer holding
#   /usr/local/bin/miracolix-operator   the binary, glibc linked statically (-C target-feature=+crt-static)
#   /etc/passwd, /etc/group             root and nonroot (65532), from image/rootfs/etc
#   /etc/nsswitch.conf                  hosts: files dns (the sources static glibc has built in)
#   /etc/ssl/certs/ca-certificates.crt  Debian's ca-certificates bundle of the build machine
#   /home/nonroot (65532, 0700), /tmp (1777)
# and nothing else: no shell, no package manager, no libc to load.
#
# The image is assembled with buildah (`from scratch`, `add`, `config`, `commit`) into a private,
# throw-away storage (vfs driver, chroot isolation; nothing runs inside the image), so no daemon and
# no registry are needed. It is built for the machine's own architecture; the release workflow runs
# this script on an amd64 and an arm64 runner.
#
# Environment: IMAGE_REPOSITORY (default ghcr.io/miracum/miracolix-operator), MIRACOLIX_GIT_REVISION
# (default: git rev-parse HEAD; `unknown` without git), SOURCE_DATE_EPOCH (default: the commit's
# time; with both the same, the layer and config are byte-identical, see docs/image.md).
set -euo pipefail
cd "$(dirname "$0")/.."

repository=${IMAGE_REPOSITORY:-ghcr.io/miracum/miracolix-operator}
cargo=${CARGO:-cargo}
target_dir=${CARGO_TARGET_DIR:-target}
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "image: no [workspace.package] version in Cargo.toml" >&2; exit 2; }

case "$(uname -m)" in
    x86_64) arch=amd64 triple=x86_64-unknown-linux-gnu ;;
    aarch64 | arm64) arch=arm64 triple=aarch64-unknown-linux-gnu ;;
    *) echo "image: unsupported machine $(uname -m) (amd64 and arm64 are built)" >&2; exit 2 ;;
esac

revision=${MIRACOLIX_GIT_REVISION:-}
if [ -z "$revision" ]; then
    revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
created=$(date -u -d "@${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ)

command -v buildah >/dev/null ||
    { echo "image: buildah is missing: run scripts/install-tools.sh (make tools)" >&2; exit 2; }
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] ||
    { echo "image: $ca_bundle is missing: apt-get install ca-certificates (make tools)" >&2; exit 2; }

out=target/image
name="miracolix-operator-${version}-linux-${arch}"
mkdir -p "$out"

echo "== image: cargo build --profile image --target ${triple} (static glibc, rev ${revision:0:12})"
# --target makes RUSTFLAGS apply to the operator only, not to build scripts and proc macros (which
# cannot be linked statically and need not be).
RUSTFLAGS="-C target-feature=+crt-static" MIRACOLIX_GIT_REVISION="${revision:0:12}" \
    "$cargo" build --locked --profile image --target "$triple" -p miracolix-operator --bin miracolix-operator
binary="${target_dir}/${triple}/image/miracolix-operator"

work=$(mktemp -d "${TMPDIR:-/tmp}/miracolix-image.XXXXXX")
storage=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
cleanup() {
    buildah "${storage[@]}" rm --all >/dev/null 2>&1 || true
    # vfs layers may hold read-only directories.
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== image: layer"
# The layer as a tar written here rather than buildah copy: ownership (root, and 65532 for the home
# directory), modes and order are stated, not taken from the build machine's umask.
python3 - "$work/layer.tar" "$binary" "$ca_bundle" "$SOURCE_DATE_EPOCH" <<'PY'
import io, sys, tarfile

layer, binary, ca_bundle, epoch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def entry(name, kind, mode, uid=0, data=None):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, uid, epoch
    info.uname = info.gname = "nonroot" if uid == 65532 else "root"
    if data is not None:
        info.size = len(data)
    return info, (io.BytesIO(data) if data is not None else None)

def read(path):
    with open(path, "rb") as f:
        return f.read()

entries = [
    entry("etc", tarfile.DIRTYPE, 0o755),
    entry("etc/group", tarfile.REGTYPE, 0o644, data=read("image/rootfs/etc/group")),
    entry("etc/nsswitch.conf", tarfile.REGTYPE, 0o644, data=read("image/rootfs/etc/nsswitch.conf")),
    entry("etc/passwd", tarfile.REGTYPE, 0o644, data=read("image/rootfs/etc/passwd")),
    entry("etc/ssl", tarfile.DIRTYPE, 0o755),
    entry("etc/ssl/certs", tarfile.DIRTYPE, 0o755),
    entry("etc/ssl/certs/ca-certificates.crt", tarfile.REGTYPE, 0o644, data=read(ca_bundle)),
    entry("home", tarfile.DIRTYPE, 0o755),
    entry("home/nonroot", tarfile.DIRTYPE, 0o700, uid=65532),
    entry("tmp", tarfile.DIRTYPE, 0o1777),
    entry("usr", tarfile.DIRTYPE, 0o755),
    entry("usr/local", tarfile.DIRTYPE, 0o755),
    entry("usr/local/bin", tarfile.DIRTYPE, 0o755),
    entry("usr/local/bin/miracolix-operator", tarfile.REGTYPE, 0o755, data=read(binary)),
]
with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
    for info, data in entries:
        tar.addfile(info, data)
PY

echo "== image: buildah (vfs storage in $work)"
export BUILDAH_ISOLATION=chroot
ctr=$(buildah "${storage[@]}" from --name "miracolix-image-$$" scratch)
buildah "${storage[@]}" add --quiet "$ctr" "$work/layer.tar" / >/dev/null
# Ports: 8080 health probes (/livez, /readyz), 9090 metrics, as manifests/base/deployment.yaml names them.
buildah "${storage[@]}" config \
    --os linux --arch "$arch" \
    --user 65532:65532 \
    --workingdir /home/nonroot \
    --entrypoint '["/usr/local/bin/miracolix-operator"]' \
    --cmd run \
    --port 8080/tcp --port 9090/tcp \
    --created-by "scripts/image.sh" \
    --label "org.opencontainers.image.title=miracolix-operator" \
    --label "org.opencontainers.image.description=Kubernetes operator for the MIRACUM data integration centre (DIZ) stack" \
    --label "org.opencontainers.image.source=https://github.com/miracum/miracolix-operator" \
    --label "org.opencontainers.image.url=https://github.com/miracum/miracolix-operator" \
    --label "org.opencontainers.image.documentation=https://github.com/miracum/miracolix-operator/blob/main/docs/install.md" \
    --label "org.opencontainers.image.vendor=MIRACUM" \
    --label "org.opencontainers.image.licenses=Apache-2.0" \
    --label "org.opencontainers.image.version=${version}" \
    --label "org.opencontainers.image.revision=${revision}" \
    --label "org.opencontainers.image.created=${created}" \
    "$ctr"
rm -f "$out/$name.oci.tar"
# --identity-label=false: no io.buildah.version label, so the buildah version does not change the
# image; --timestamp: every file and the config's `created` get the commit's time. The layer is
# gzip-compressed here, as a registry stores it: pushing reuses the blob, so the digest tested here
# is the digest published (.github/workflows/release.yml checks that).
buildah "${storage[@]}" commit --quiet --format oci --identity-label=false --disable-compression=false \
    --timestamp "$SOURCE_DATE_EPOCH" --rm \
    "$ctr" "oci-archive:$out/$name.oci.tar:${repository}:${version}" >/dev/null

echo "== image: SBOM"
python3 scripts/sbom.py --target "$triple" -o "$out/$name.cdx.json"

# The manifest digest, read from the archive's index.json (what a registry will call the image).
digest=$(tar -xOf "$out/$name.oci.tar" index.json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')
echo "$digest" >"$out/$name.digest"
size=$(stat -c %s "$out/$name.oci.tar")
echo "image: $out/$name.oci.tar (${repository}:${version}, ${digest}, $((size / 1024 / 1024)) MiB, rev ${revision:0:12})"
