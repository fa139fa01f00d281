#!/usr/bin/env bash
# `make demo`: the operator's main job on its embedded default, on this machine, without a cluster.
# Starts the project's test API server, installs the CRDs and the examples with the real kubectl,
# runs the operator until every example site is Ready, prints what it did, and stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v kubectl >/dev/null || { echo "demo: kubectl is required (see README)" >&2; exit 2; }
for tool in jq curl python3; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is required" >&2; exit 2; }
done
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
echo "==> feasibility: waiting until the FeasibilityEndpoint's privacy gate is Ready"
if ! kubectl wait --for=condition=Ready --timeout=60s feasibilityendpoint --all -A; then
  echo "demo: the FeasibilityEndpoint did not become Ready; operator log:" >&2
  tail -50 "$work/operator.log" >&2
  kubectl get feasibilityendpoint -A -o yaml >&2
  exit 1
fi
kubectl get feasibilityendpoint -A

# One query through the gate, run here as the gate Deployment runs it in the cluster: the same
# binary and subcommand (the Deployment's args), its GATE_* settings and the callers config from
# the gate's ConfigMap, the token from the site's Secret. Only addresses and paths are local, and
# FLARE is a stub on 127.0.0.1 that answers every query with the true count 1234.
echo
echo "==> feasibility: one query through the gate (FLARE is a stub answering 1234)"
ns=diz-erlangen gate=erlangen-gate
deploy_json=$(kubectl get deployment "$gate" -n "$ns" -o json)
gate_args=$(jq -r '.spec.template.spec.containers[0].args | join(" ")' <<<"$deploy_json")
mkdir -p "$work/gate/state" "$work/gate/dsf"
kubectl get secret "$gate-dsf-token" -n "$ns" -o jsonpath='{.data.token}' | base64 -d >"$work/gate/dsf/token"
kubectl get configmap "$gate" -n "$ns" -o jsonpath='{.data.callers\.json}' |
  jq --arg f "$work/gate/dsf/token" '.tokens[].tokenFile = $f' >"$work/gate/callers.json"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
flare_port=$(free_port) api_port=$(free_port) ops_port=$(free_port)
python3 scripts/demo_flare_stub.py "$flare_port" 1234 >"$work/flare.log" 2>&1 &
pids+=($!)
(
  # The Deployment's settings, then the local addresses and paths over them.
  while IFS='=' read -r name value; do export "$name=$value"; done \
    < <(jq -r '.spec.template.spec.containers[0].env[] | "\(.name)=\(.value)"' <<<"$deploy_json")
  export GATE_EXECUTOR_URL="http://127.0.0.1:$flare_port" GATE_STATE_DIR="$work/gate/state" \
    GATE_CALLERS="$work/gate/callers.json" GATE_LISTEN="127.0.0.1:$api_port" \
    GATE_OPS_LISTEN="127.0.0.1:$ops_port"
  echo "gate settings from the Deployment: $(env | grep '^GATE_\(EPSILON\|ROUND_TO\|SUPPRESS_BELOW\|REQUESTS_PER_HOUR\|DAILY_EPSILON_BUDGET\)=' | sort | tr '\n' ' ')"
  # shellcheck disable=SC2086 # the args are words
  exec "$bin/miracolix-operator" $gate_args
) >"$work/gate.log" 2>&1 &
pids+=($!)
ready=""
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$flare_port/cache/stats" >/dev/null 2>&1 &&
    curl -fsS "http://127.0.0.1:$ops_port/readyz" >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.1
done
[ -n "$ready" ] || { cat "$work/gate.log" "$work/flare.log" >&2; echo "demo: the gate or the FLARE stub did not start" >&2; exit 1; }
head -1 "$work/gate.log"
query='{"version":"http://to_be_decided.com/draft-1/schema#","inclusionCriteria":[[{"termCodes":[{"code":"E11","system":"http://fhir.de/CodeSystem/bfarm/icd-10-gm","display":"Diabetes mellitus, Typ 2"}]}]]}'
answer=$(curl -fsS -X POST "http://127.0.0.1:$api_port/query/execute" \
  -H "Authorization: Bearer $(cat "$work/gate/dsf/token")" -H 'Content-Type: application/sq+json' \
  --data "$query") || { cat "$work/gate.log" >&2; echo "demo: the gate refused the query" >&2; exit 1; }
unauthorized=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$api_port/query/execute" \
  -H 'Authorization: Bearer wrong' -H 'Content-Type: application/sq+json' --data "$query")
echo "true count (stub FLARE): 1234; released by the gate (Laplace noise, rounded): $answer; with a wrong token: HTTP $unauthorized"
echo "audit log line:"
cat "$work/gate/state/audit.jsonl"

echo
echo "==> proposal inbox: waiting until Erlangen's ProposalInbox is Ready"
if ! kubectl wait --for=condition=Ready --timeout=60s proposalinbox --all -A; then
  echo "demo: the ProposalInbox did not become Ready; operator log:" >&2
  tail -50 "$work/operator.log" >&2
  kubectl get proposalinbox -A -o yaml >&2
  exit 1
fi
kubectl get proposalinbox -A
echo "the inbox's objects (the data volume has no owner: deleting the inbox keeps it):"
kubectl get deployment,service,configmap,networkpolicy,ingress,persistentvolumeclaim -n diz-erlangen \
  -l diz.miracum.org/proposal-inbox=erlangen
# The test API server runs no pods, so the status has no counts: the summary the operator reads
# from the inbox's ops port is not there (status.summaryError says why).
echo "summary: $(kubectl get proposalinbox erlangen -n diz-erlangen -o jsonpath='{.status.summaryError}')"
scripts/demo-inbox.sh "$work" "$bin"

echo
echo "demo: all example sites are Ready on the certified release, Erlangen's feasibility gate"
echo "answered a query and its proposal inbox is deployed. Try it yourself: make sim"
scripts/demo-hub.sh "$work" "$bin"
