#!/usr/bin/env bash
# `make demo`, proposal inbox part (called by scripts/demo.sh once Erlangen's ProposalInbox is
# Ready): one sample proposal from received to decided.
#
# The test API server runs no pods, so the inbox runs here as its Deployment runs it in the
# cluster: the same binary and subcommand (the Deployment's args), its INBOX_* settings and the
# config.json the operator rendered into the inbox's ConfigMap, the keys and secrets from the
# site's Secrets. Only addresses and paths are local: the central office's decision target, the
# webhook and the mail server are stubs on 127.0.0.1 (scripts/demo_inbox_stub.py), and the
# site's identity provider is the development OIDC issuer from the e2e crate
# (miracolix-dev-issuer; anyone who types an e-mail address is logged in).
#
# The central office signs the proposal with the demo key examples/keys/demo-central-office.pem
# (openssl, as any central office could); the DIZ staff and the UAC members log in through the
# issuer and act through the inbox's JSON API with their session cookie and CSRF token, exactly
# what the web page's forms send.
#
# Usage: scripts/demo-inbox.sh WORK_DIR BIN_DIR (KUBECONFIG pointing at the demo's API server)
set -euo pipefail
cd "$(dirname "$0")/.."

work="$1/inbox"
bin="$2"
for tool in jq curl python3 openssl kubectl; do
  command -v "$tool" >/dev/null || { echo "demo-inbox: $tool is required" >&2; exit 2; }
done
mkdir -p "$work/central-keys" "$work/secrets" "$work/decisions" "$work/data"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

ns=diz-erlangen inbox=erlangen-inbox
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
secret() { kubectl get secret "$1" -n "$ns" -o json | jq -r --arg k "$2" '.data[$k]' | base64 -d; }
fail() {
  echo "demo-inbox: $*" >&2
  for log in inbox.log issuer.log stub.log; do
    [ -s "$work/$log" ] && { echo "--- $log" >&2; tail -20 "$work/$log" >&2; }
  done
  exit 1
}

echo "==> proposal inbox: one sample proposal from received to decided"
deploy_json=$(kubectl get deployment "$inbox" -n "$ns" -o json)
inbox_args=$(jq -r '.spec.template.spec.containers[0].args | join(" ")' <<<"$deploy_json")
config_json=$(kubectl get configmap "$inbox" -n "$ns" -o jsonpath='{.data.config\.json}')

# The Secrets the Deployment mounts, as files.
kubectl get secret inbox-central-keys -n "$ns" -o json |
  jq -r '.data | to_entries[] | "\(.key) \(.value)"' |
  while read -r key value; do base64 -d <<<"$value" >"$work/central-keys/$key"; done
secret inbox-decision-key key.pem >"$work/secrets/decision-key.pem"
secret inbox-session secret >"$work/secrets/session-secret"
secret inbox-oidc-client client-secret >"$work/secrets/oidc-client-secret"
secret inbox-smtp username >"$work/secrets/smtp-username"
secret inbox-smtp password >"$work/secrets/smtp-password"
secret ticket-webhook token >"$work/secrets/ticket-system-token"

api_port=$(free_port) ops_port=$(free_port) stub_port=$(free_port) smtp_port=$(free_port)
python3 scripts/demo_inbox_stub.py "$stub_port" "$smtp_port" "$work/decisions" >"$work/stub.log" 2>&1 &
pids+=($!)
client_id=$(jq -r '.oidc.clientId' <<<"$config_json")
"$bin/miracolix-dev-issuer" --port 0 --client-id "$client_id" \
  --client-secret-file "$work/secrets/oidc-client-secret" --url-file "$work/issuer-url" \
  >"$work/issuer.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/issuer-url" ] && break; sleep 0.1; done
[ -s "$work/issuer-url" ] || fail "the development OIDC issuer did not start"
issuer=$(cat "$work/issuer-url")
# The inbox on localhost: browsers (and curl) keep its Secure session cookie there over http.
inbox_url="http://localhost:$api_port"

# The operator's config.json with local addresses and paths; everything else as rendered.
jq --arg decisions "http://127.0.0.1:$stub_port/decisions" \
  --arg hooks "http://127.0.0.1:$stub_port/hooks" --arg secrets "$work/secrets" \
  --arg issuer "$issuer" --arg callback "$inbox_url/inbox/auth/callback" \
  --argjson smtp_port "$smtp_port" '
  .decisions.url = $decisions
  | .notifications |= map(if .webhook then
      .webhook.url = "\($hooks)/\(.name)"
      | .webhook.tokenFile = (if .webhook.tokenFile then "\($secrets)/\(.name)-token" else null end)
    else . end)
  | if .smtp then .smtp.host = "127.0.0.1" | .smtp.port = $smtp_port | .smtp.starttls = false
      | .smtp.usernameFile = (if .smtp.usernameFile then "\($secrets)/smtp-username" else null end)
      | .smtp.passwordFile = (if .smtp.passwordFile then "\($secrets)/smtp-password" else null end)
    else . end
  | .oidc.issuerUrl = $issuer | .oidc.redirectUrl = $callback
  | .oidc.clientSecretFile = "\($secrets)/oidc-client-secret"' <<<"$config_json" >"$work/config.json"
echo "inbox config from the ConfigMap (local addresses): UAC quorum $(jq '.uac.quorum' "$work/config.json") of $(jq '.uac.members | length' "$work/config.json") members, DIZ staff $(jq -c '[.diz.members[].email] + [.diz.oidcGroup | select(.)]' "$work/config.json")"

(
  # The Deployment's settings, then the local addresses and paths over them.
  while IFS='=' read -r name value; do export "$name=$value"; done \
    < <(jq -r '.spec.template.spec.containers[0].env[] | select(.value) | "\(.name)=\(.value)"' <<<"$deploy_json")
  export INBOX_LISTEN="127.0.0.1:$api_port" INBOX_OPS_LISTEN="127.0.0.1:$ops_port" \
    INBOX_CONFIG="$work/config.json" INBOX_DATABASE="sqlite://$work/data/inbox.db" \
    INBOX_CENTRAL_KEYS="$work/central-keys" INBOX_DECISION_KEY="$work/secrets/decision-key.pem" \
    INBOX_SESSION_SECRET_FILE="$work/secrets/session-secret"
  # shellcheck disable=SC2086 # the args are words
  exec "$bin/miracolix-operator" $inbox_args
) >"$work/inbox.log" 2>&1 &
pids+=($!)
ready=""
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ops_port/readyz" >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.1
done
[ -n "$ready" ] || fail "the inbox did not become ready"
echo "inbox running as the Deployment runs it: miracolix-operator $inbox_args"

# 1. The central office signs the proposal (Ed25519 over the payload bytes) and posts it.
id="FDPG-2026-0042"
jq -n --arg id "$id" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '{
  id: $id, title: "Diabetes and kidney function 2015-2025",
  summary: "Retrospective cohort: HbA1c and eGFR trajectories of adults with type 2 diabetes.",
  applicant: {name: "Dr. Eva Example", institution: "Universitätsklinikum Musterstadt"},
  requestedData: ["Person", "Diagnose (ICD-10-GM E11)", "Laborbefund (HbA1c, eGFR)"],
  sites: ["erlangen", "marburg"], issuedAt: $at}' | tr -d '\n' >"$work/proposal.json"
openssl pkeyutl -sign -rawin -inkey examples/keys/demo-central-office.pem \
  -in "$work/proposal.json" -out "$work/proposal.sig"
jq -n --arg payload "$(base64 -w0 "$work/proposal.json")" --arg sig "$(base64 -w0 "$work/proposal.sig")" \
  '{keyId: "fdpg-demo-2026", payload: $payload, signature: $sig}' >"$work/envelope.json"
post_proposal() {
  curl -sS -o "$work/intake.json" -w '%{http_code}' -X POST "$inbox_url/inbox/api/v1/proposals" \
    -H 'Content-Type: application/json' --data @"$work/envelope.json"
}
code=$(post_proposal)
[ "$code" = 201 ] || fail "intake answered $code: $(cat "$work/intake.json")"
echo "central office -> inbox: $id signed with key fdpg-demo-2026: HTTP $code, state $(jq -r '.state' "$work/intake.json")"
code=$(post_proposal)
echo "the same envelope again: HTTP $code (idempotent on the proposal id, stored once)"

# 2. People log in through the site's identity provider, as in a browser (authorization code
# with PKCE), and act with the session cookie and the CSRF token of the page.
login() { # EMAIL JAR -> prints the CSRF token
  local email=$1 jar=$2 authorize form
  rm -f "$jar"
  authorize=$(curl -sS -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' "$inbox_url/inbox/auth/login")
  form=$(curl -sS "$authorize")
  field() { grep -o "name=\"$1\" value=\"[^\"]*\"" <<<"$form" | sed 's/.*value="//; s/"$//; s/&amp;/\&/g'; }
  local callback
  callback=$(curl -sS -o /dev/null -w '%{redirect_url}' -G "$issuer/login" \
    --data-urlencode "email=$email" --data-urlencode "state=$(field state)" \
    --data-urlencode "nonce=$(field nonce)" --data-urlencode "redirect_uri=$(field redirect_uri)" \
    --data-urlencode "code_challenge=$(field code_challenge)")
  curl -sS -c "$jar" -b "$jar" -o /dev/null "$callback"
  curl -sS -b "$jar" "$inbox_url/inbox/proposals/$id" |
    grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'
}
act() { # EMAIL KIND JSON -> prints "HTTP state-or-error"
  local jar="$work/jar-${1%%@*}" csrf
  csrf=$(login "$1" "$jar")
  [ -n "$csrf" ] || fail "$1 could not log in"
  curl -sS -b "$jar" -o "$work/act.json" -w '%{http_code}' -X POST \
    "$inbox_url/inbox/api/v1/proposals/$id/$2" -H 'Content-Type: application/json' \
    -H "X-CSRF-Token: $csrf" --data "$3"
  echo " $(jq -r '.state // .error' "$work/act.json")"
}
state() { jq -r '.state' "$work/act.json"; }

diz=$(jq -r '.diz.members[0].email' "$work/config.json")
mapfile -t uac < <(jq -r '.uac.members[].email' "$work/config.json")
quorum=$(jq -r '.uac.quorum' "$work/config.json")

echo "UAC member ${uac[0]} tries the DIZ check: $(act "${uac[0]}" diz-check '{"action":"dizApprove","dataAmount":850}')"
out=$(act "$diz" diz-check '{"action":"dizApprove","dataAmount":850,"text":"HbA1c and eGFR complete from 2015"}')
[ "$(state)" = DIZ_APPROVED ] || fail "DIZ check: $out"
echo "DIZ staff $diz: DIZ check, can deliver 850 patients: $out"
choices=('{"choice":"approve"}'
  '{"choice":"approveWithConditions","conditions":"Aggregate results only; no free-text fields."}'
  '{"choice":"approve"}' '{"choice":"approve"}' '{"choice":"approve"}')
for i in $(seq 0 $((quorum - 1))); do
  out=$(act "${uac[$i]}" votes "${choices[$i]}")
  echo "UAC member ${uac[$i]} votes $(jq -r '.choice' <<<"${choices[$i]}"): $out"
done
decided=$(state)
case "$decided" in
  UAC_APPROVED | CONDITIONAL_APPROVAL_PENDING) ;;
  *) fail "no decision after $quorum votes: $decided" ;;
esac

# 3. The worker posts the signed decision to the central office (every 5 s, retried).
decision_file="$work/decisions/decision-1.json"
for _ in $(seq 1 150); do [ -s "$decision_file" ] && break; sleep 0.1; done
[ -s "$decision_file" ] || fail "no decision reached the central office's stub within 15 s"
jq -r '.payload' "$decision_file" | base64 -d >"$work/decision.json"
jq -r '.signature' "$decision_file" | base64 -d >"$work/decision.sig"
openssl pkey -in "$work/secrets/decision-key.pem" -pubout -out "$work/site-public.pem"
verified=$(openssl pkeyutl -verify -rawin -pubin -inkey "$work/site-public.pem" \
  -in "$work/decision.json" -sigfile "$work/decision.sig")
echo "inbox -> central office: the signed decision (key $(jq -r '.keyId' "$decision_file"); openssl: $verified):"
jq . "$work/decision.json"

jar="$work/jar-${diz%%@*}"
echo "audit trail of $id:"
curl -sS -b "$jar" "$inbox_url/inbox/api/v1/proposals/$id" |
  jq -r '.audit[] | "  \(.at)  \(.actor)  \(.action)  \(.detail)"'
echo "notifications (webhook and e-mail stubs):"
sed 's/^/  /' "$work/stub.log"
echo "summary the operator reads from the ops port: $(curl -fsS "http://127.0.0.1:$ops_port/api/v1/summary" | jq -c '{counts, overdue, decisions, notifications}')"
