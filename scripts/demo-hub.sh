#!/usr/bin/env bash
# `make demo`, consortium part (docs/consortium.md): a hub with the demo sites reporting to it.
# Called by scripts/demo.sh with its work directory and binary directory, while its test API
# server (KUBECONFIG) runs and the example sites are Ready.
#
# Each example site has spec.reporting, so the operator rendered a reporter CronJob for it. The
# test API server runs no pods, so the reporter runs here as the CronJob would run it: the same
# binary and subcommand (the CronJob's args), its REPORT_* settings from the CronJob, the DizSite
# read from the API server. Only addresses and paths are local: the hub runs on 127.0.0.1, each
# site's Blaze is a stub answering `_summary=count` (scripts/demo_blaze_stub.py), and the keys
# come from `report keygen` into the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:?usage: demo-hub.sh WORK_DIR BIN_DIR}
bin=${2:?usage: demo-hub.sh WORK_DIR BIN_DIR}
dir="$work/hub"
mkdir -p "$dir/state"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo
echo "==> consortium hub: the example sites' reporters (CronJobs) and their Reporting condition"
kubectl get cronjobs -A -l diz.miracum.org/component=reporter
kubectl get dizsite -A -o jsonpath='{range .items[*]}{.spec.siteId}{": "}{range .status.conditions[?(@.type=="Reporting")]}{.reason}{" - "}{.message}{end}{"\n"}{end}'

# The sites that report: namespace, DizSite name, site id.
mapfile -t sites < <(kubectl get dizsite -A -o json |
  jq -r '.items[] | select(.spec.reporting) | "\(.metadata.namespace) \(.metadata.name) \(.spec.siteId)"')
[ "${#sites[@]}" -ge 3 ] || { echo "demo: fewer than three example sites report" >&2; exit 1; }

echo
echo "==> each site admin generates the site's key once (report keygen) and applies the Secret"
for s in "${sites[@]}"; do
  read -r ns name site <<<"$s"
  "$bin/miracolix-operator" report keygen --site "$site" --name "$name" --namespace "$ns" \
    --key-id "$site-demo" --registration-file "$dir/$site.registration.json" \
    >"$dir/$site-secret.yaml" 2>/dev/null
  kubectl apply --server-side -f "$dir/$site-secret.yaml" >/dev/null
  # What the CronJob's pod would mount: the Secret's two files.
  mkdir -p "$dir/$site-key"
  for f in private-key.pem key-id; do
    kubectl get secret "$name-report-key" -n "$ns" -o json | jq -r --arg f "$f" '.data[$f]' |
      base64 -d >"$dir/$site-key/$f"
  done
  echo "$site: Secret $ns/$name-report-key; public key to register: $(cat "$dir/$site.registration.json")"
done

echo
echo "==> the hub admin registers the public keys (sites.json) and starts the hub"
jq -s '{sites: .}' "$dir"/*.registration.json >"$dir/sites.json"
api_port=$(free_port) ops_port=$(free_port)
"$bin/miracolix-operator" hub --sites "$dir/sites.json" --public-read --state-dir "$dir/state" \
  --listen "127.0.0.1:$api_port" --ops-listen "127.0.0.1:$ops_port" >"$dir/hub.log" 2>&1 &
pids+=($!)
hub="http://127.0.0.1:$api_port"
ready=""
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ops_port/readyz" >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.1
done
[ -n "$ready" ] || { cat "$dir/hub.log" >&2; echo "demo: the hub did not start" >&2; exit 1; }
echo "hub on $hub with $(jq '.sites | length' "$dir/sites.json") registered sites"

# Made-up counts per site (the stub's Blaze): Specimen at two sites only, so the Data Map does
# not show it (three-site rule); small counts (3, 1) leave their site as 5.
counts_of() {
  case "$1" in
    0) echo '{"Patient": 48213, "Encounter": 310422, "Condition": 260117, "Observation": 2104339, "Procedure": 88412, "MedicationAdministration": 51230, "Specimen": 3, "Consent": 41002}' ;;
    1) echo '{"Patient": 39120, "Encounter": 201877, "Condition": 190233, "Observation": 1650021, "Procedure": 60011, "MedicationAdministration": 1, "Specimen": 12004, "Consent": 30250}' ;;
    2) echo '{"Patient": 21877, "Encounter": 98765, "Condition": 87001, "Observation": 721004, "Procedure": 23456, "MedicationAdministration": 0, "Consent": 9800}' ;;
    *) echo '{"Patient": 15002, "Encounter": 60210, "Condition": 51234, "Observation": 402345, "Procedure": 12001, "Consent": 7001}' ;;
  esac
}

run_reporter() { # ns name site blaze_url
  local ns=$1 name=$2 site=$3 blaze=$4 cronjob
  cronjob=$(kubectl get cronjob "$name-reporter" -n "$ns" -o json)
  (
    # The CronJob's settings, then the local addresses and paths over them.
    while IFS='=' read -r var value; do export "$var=$value"; done \
      < <(jq -r '.spec.jobTemplate.spec.template.spec.containers[0].env[] | select(.value) | "\(.name)=\(.value)"' <<<"$cronjob")
    export REPORT_NAMESPACE="$ns" REPORT_HUB_URL="$hub" REPORT_BLAZE_URL="$blaze" \
      REPORT_KEY_FILE="$dir/$site-key/private-key.pem" REPORT_KEY_ID_FILE="$dir/$site-key/key-id"
    # shellcheck disable=SC2046 # the args are words
    exec "$bin/miracolix-operator" $(jq -r '.spec.jobTemplate.spec.template.spec.containers[0].args | join(" ")' <<<"$cronjob")
  )
}

echo
echo "==> each site's reporter runs once, as its CronJob would (Blaze is a stub)"
i=0
for s in "${sites[@]}"; do
  read -r ns name site <<<"$s"
  port=$(free_port)
  python3 scripts/demo_blaze_stub.py "$port" "$(counts_of "$i")" >"$dir/$site-blaze.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$port/fhir/Patient?_summary=count" >/dev/null 2>&1 && break
    sleep 0.1
  done
  out=$(run_reporter "$ns" "$name" "$site" "http://127.0.0.1:$port/fhir" 2>"$dir/$site-report.log") ||
    { cat "$dir/$site-report.log" >&2; echo "demo: the report of $site failed" >&2; exit 1; }
  echo "$site: $(jq -c '{msg, sequence, release, dataMap}' <<<"$out")"
  printf '%s\n' "http://127.0.0.1:$port/fhir" >"$dir/$site-blaze.url"
  i=$((i + 1))
done
read -r ns name site <<<"${sites[0]}"
out=$(run_reporter "$ns" "$name" "$site" "$(cat "$dir/$site-blaze.url")" 2>>"$dir/$site-report.log") ||
  { cat "$dir/$site-report.log" >&2; echo "demo: the second report of $site failed" >&2; exit 1; }
echo "$site again (the Job's pod restarted within the hour): $(jq -r .msg <<<"$out")"

echo
echo "==> release matrix (miracolix-operator release status --hub)"
"$bin/miracolix-operator" release status --hub "$hub"
echo
echo "==> Data Map (GET /api/v1/datamap: a type is shown when at least 3 sites report it; totals as 'at least')"
curl -fsS "$hub/api/v1/datamap" |
  jq -r '.resourceTypes[] | "\(.resourceType): \(if .shown then "at least \(.atLeast) (\(.sites) sites)" else .note end)"'
echo
echo "reports accepted by the hub: $(curl -fsS "http://127.0.0.1:$ops_port/metrics" | awk '/^miracolix_hub_reports_total\{outcome="accepted"\}/ {print $2}')"
