#!/usr/bin/env bash
# Installs the command-line tools the test suite shells out to. Idempotent: a tool already on
# PATH is left alone.
set -euo pipefail

KUBERNETES_VALIDATE_VERSION="1.37.0"

if ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "installing kubernetes-validate ${KUBERNETES_VALIDATE_VERSION}"
    python3 -m pip install --quiet "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi
