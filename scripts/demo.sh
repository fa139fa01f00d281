#!/usr/bin/env bash
# `make demo`: the operator's main job on its embedded default, on this machine, without a cluster.
# Starts the project's test API server, installs the CRDs and the examples with the real kubectl,
# runs the operator until every example site is Ready, prints what it did, and stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v kubectl >/dev/null || { echo "demo: kubectl is required (see README)" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bin="${CARGO_TARGET_DIR:-target}/debug"
echo "==> building the operator and the test API server"
cargo build --locked -q -p miracolix-operator -p miracolix-e2e --bins

echo "==> starting the test API server (workloads become ready after 2s when their pods meet the image contracts)"
# The catalogue's contracts and those of the components the example releases define (XNAT).
"$bin/miracolix-operator" contracts --release examples/11-release-miracolix-imaging-2026.1.yaml >"$work/contracts.json"
"$bin/miracolix-testapi" --port 0 --kubeconfig "$work/kubeconfig" --ready-delay 2 \
  --contracts "$work/contracts.json" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/kubeconfig" ] && break; sleep 0.1; done
[ -s "$work/kubeconfig" ] || { cat "$work/server.log"; echo "demo: the test API server did not start" >&2; exit 1; }
export KUBECONFIG="$work/kubeconfig" KUBECACHEDIR="$work/kube-cache"

echo "==> installing CRDs and examples with kubectl"
kubectl apply --server-side -f crds/
kubectl wait --for condition=established --timeout=30s -f crds/ >/dev/null
kubectl apply --server-side -f e2e/fixtures/cnpg-cluster-crd.yaml
kubectl apply --server-side -f examples/00-namespaces.yaml >/dev/null
kubectl apply --server-side -f scripts/demo-secrets.yaml >/dev/null
kubectl apply --server-side -f examples/

echo "==> running the operator (log: operator.log in the work dir)"
"$bin/miracolix-operator" run --trusted-keys examples/trusted-keys --log-format text \
  --probe-address 127.0.0.1:0 --metrics-address 127.0.0.1:0 \
  >"$work/operator.log" 2>&1 &
pids+=($!)

echo "==> waiting until every DizSite is Ready"
if ! kubectl wait --for=condition=Ready --timeout=120s dizsite --all -A; then
  echo "demo: sites did not become Ready; operator log:" >&2
  tail -50 "$work/operator.log" >&2
  kubectl get dizsite -A -o yaml >&2
  exit 1
fi

echo
kubectl get miracum -A
echo
echo "==> what the operator deployed"
kubectl get pods,deployments,statefulsets,cronjobs,services,networkpolicies,ingresses,clusters.postgresql.cnpg.io \
  -A -l app.kubernetes.io/managed-by=miracolix-operator
echo
echo "==> summary"
kubectl get dizsite -A -o jsonpath='{range .items[*]}{.spec.siteId}{": release "}{.status.currentRelease}{", ready components: "}{range .status.components[?(@.enabled==true)]}{.name}{"("}{.readyReplicas}{"/"}{.replicas}{") "}{end}{"\n"}{end}'
echo
echo "demo: all example sites are Ready on the certified release. Try it yourself: make sim"
