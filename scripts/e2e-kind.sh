#!/usr/bin/env bash
# `make e2e-kind`: the e2e suite on a real kind cluster. Needs docker and kind (not available on
# the project's build machines: there, `make e2e` runs the same suite against the test API server).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${KIND_CLUSTER:-miracolix-e2e}
image=${IMAGE:-miracolix-operator:e2e}
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 2; }
done
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster"
kubeconfig=$(mktemp)
trap 'rm -f "$kubeconfig"' EXIT
kind get kubeconfig --name "$cluster" >"$kubeconfig"
docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"
export KUBECONFIG="$kubeconfig"
kubectl apply --server-side -f crds/
kubectl apply --server-side -k manifests/
kubectl -n miracolix-system set image deployment/miracolix-operator operator="$image"
kubectl -n miracolix-system create secret generic miracolix-trusted-keys \
  --from-file=examples/trusted-keys/ --dry-run=client -o yaml | kubectl apply --server-side -f -
kubectl -n miracolix-system rollout status deployment/miracolix-operator --timeout=180s
E2E_KUBECONFIG="$kubeconfig" E2E_OPERATOR=external \
  cargo test --locked -p miracolix-operator --test e2e_cluster -- --nocapture
