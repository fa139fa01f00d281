#!/usr/bin/env bash
# `make chart-test`: the install artefacts. Offline, < 60 s once scripts/install-tools.sh ran.
#   1. charts/miracolix-operator/crds/ is byte-identical to crds/
#   2. helm lint --strict with default values and every ci/*.yaml
#   3. helm template for each; every built-in object valid for Kubernetes ${K8S_VERSION}
#      (kubernetes-validate --strict), custom kinds (ServiceMonitor) checked by shape, install
#      invariants (restricted pod, probes, leader election/PDB/Lease, Roles per watched namespace)
#   4. kubectl kustomize manifests/ (namespaced base) and manifests/cluster-wide/: validated the same way
#   5. chart = kustomize, both modes: default values = manifests/ (namespaced), ci/cluster-wide-values.yaml
#      = manifests/cluster-wide/: same objects, RBAC, pod spec, Service, NetworkPolicy; and
#      ci/feed-values.yaml = manifests/base/ with the component manifests/feed/ (the release feed);
#      ci/hub-values.yaml = manifests/base/ + manifests/hub/ (the consortium hub)
#   6. the release's edit of values.yaml (image.digest) makes the chart pull by digest
#   7. invalid values are refused (values.schema.json and template checks); a private key given as
#      a trusted key is refused without helm printing it
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-1.33.0}
CHART=charts/miracolix-operator
HELM=.tools/bin/helm
KUBECTL=.tools/bin/kubectl
RELEASE=miracolix-operator
NAMESPACE=miracolix-system

start=$(date +%s)
failures=()
fail() { failures+=("$1"); echo "FAIL: $1" >&2; }
step() { echo "== $*"; }

for tool in "$HELM" "$KUBECTL"; do
    [ -x "$tool" ] || { echo "chart-test: $tool missing: run scripts/install-tools.sh (make tools)" >&2; exit 2; }
done
command -v kubernetes-validate >/dev/null ||
    { echo "chart-test: kubernetes-validate missing: run scripts/install-tools.sh (make tools)" >&2; exit 2; }
python3 -c 'import yaml' 2>/dev/null ||
    { echo "chart-test: python3 cannot import yaml (PyYAML comes with kubernetes-validate)" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step "CRDs in the chart are the generated ones (crds/)"
if diff -r crds "$CHART/crds" >"$out/crds.diff"; then
    echo "  $(ls crds | wc -l) CRDs identical"
else
    cat "$out/crds.diff" | head -20 >&2
    fail "charts/miracolix-operator/crds/ differs from crds/: cp crds/*.yaml $CHART/crds/"
fi

step "Chart appVersion = operator version (Cargo.toml) = kustomize image tag = Dockerfile VERSION; CHANGELOG"
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CHART/Chart.yaml")
cargo_version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
kust_tag=$(sed -n 's/^ *newTag: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' manifests/base/kustomization.yaml)
# The Dockerfile's default VERSION label too (the image `make image` builds takes Cargo's version
# itself; scripts/image_test.py checks its label), and CHANGELOG.md has a section for the version.
docker_version=$(sed -n 's/^ARG VERSION=\(.*\)$/\1/p' Dockerfile)
if [ "$app_version" = "$cargo_version" ] && [ "$app_version" = "$kust_tag" ] && [ "$app_version" = "$docker_version" ]; then
    echo "  $app_version"
else
    fail "versions differ: Chart appVersion '$app_version', Cargo '$cargo_version', kustomize newTag '$kust_tag', Dockerfile ARG VERSION '$docker_version'"
fi
grep -q "^## \[$cargo_version\]" CHANGELOG.md ||
    fail "CHANGELOG.md has no section '## [$cargo_version]' for the version in Cargo.toml"

# values files: default plus every ci/*.yaml
values_sets=(default)
for f in "$CHART"/ci/*.yaml; do values_sets+=("$f"); done

rendered=()
for v in "${values_sets[@]}"; do
    name=$(basename "$v" .yaml)
    args=()
    [ "$v" = default ] || args=(-f "$v")
    step "helm lint --strict ($name)"
    if "$HELM" lint --strict "$CHART" "${args[@]}" >"$out/lint-$name.log" 2>&1; then
        echo "  ok"
    else
        cat "$out/lint-$name.log" >&2
        fail "helm lint --strict with $name values"
    fi
    step "helm template ($name)"
    if "$HELM" template "$RELEASE" "$CHART" -n "$NAMESPACE" "${args[@]}" >"$out/helm-$name.yaml" 2>"$out/template-$name.log"; then
        rendered+=("$out/helm-$name.yaml")
        echo "  ok"
    else
        cat "$out/template-$name.log" >&2
        fail "helm template with $name values"
    fi
done

step "kubectl kustomize manifests/ (namespaced base)"
if "$KUBECTL" kustomize manifests/ >"$out/kustomize.yaml" 2>"$out/kustomize.log"; then
    rendered+=("$out/kustomize.yaml")
    echo "  ok"
else
    cat "$out/kustomize.log" >&2
    fail "kubectl kustomize manifests/"
fi
step "kubectl kustomize manifests/cluster-wide/ (opt-in overlay)"
if "$KUBECTL" kustomize manifests/cluster-wide/ >"$out/kustomize-cluster-wide.yaml" 2>"$out/kustomize-cw.log"; then
    rendered+=("$out/kustomize-cluster-wide.yaml")
    echo "  ok"
else
    cat "$out/kustomize-cw.log" >&2
    fail "kubectl kustomize manifests/cluster-wide/"
fi

# overlay NAME RESOURCES [COMPONENTS]: an overlay of directories under manifests/, rendered into
# $out/kustomize-NAME.yaml and validated with the rest.
overlay() {
    local dir="$out/$1-overlay" rel list=() comps=()
    mkdir -p "$dir"
    rel=$(realpath --relative-to="$dir" manifests)
    for r in $2; do list+=("$rel/$r"); done
    for c in ${3:-}; do comps+=("$rel/$c"); done
    { printf 'resources: [%s]\n' "$(IFS=,; echo "${list[*]}")"
      [ ${#comps[@]} -eq 0 ] || printf 'components: [%s]\n' "$(IFS=,; echo "${comps[*]}")"; } >"$dir/kustomization.yaml"
    if "$KUBECTL" kustomize "$dir" >"$out/kustomize-$1.yaml" 2>"$out/kustomize-$1.log"; then
        rendered+=("$out/kustomize-$1.yaml")
        echo "  ok ($(grep -c '^kind:' "$out/kustomize-$1.yaml") objects)"
    else
        cat "$out/kustomize-$1.log" >&2
        fail "kubectl kustomize of manifests/ $2 ${3:+with components $3}"
    fi
}

step "kubectl kustomize manifests/base/ with the component manifests/feed/ (release feed)"
overlay feed base feed

step "kubectl kustomize manifests/hub/ (the consortium hub, standalone) and manifests/base/ + manifests/hub/"
overlay hub-alone hub
overlay hub "base hub"

step "Validate every rendered object against Kubernetes $K8S_VERSION (strict) + install invariants"
if python3 scripts/chart_check.py validate "$K8S_VERSION" "${rendered[@]}"; then
    echo "  ok"
else
    fail "rendered manifests are invalid (see above)"
fi

# same WHAT HELM KUSTOMIZE: the chart's render and kustomize's install the same objects.
same() {
    step "Chart and kustomize install the same thing: $1"
    local helm="$out/helm-$2.yaml" kust="$out/kustomize${3:+-$3}.yaml"
    if [ -s "$helm" ] && [ -s "$kust" ] && python3 scripts/chart_check.py compare "$helm" "$kust"; then
        echo "  ok"
    else
        fail "chart ($2) and kustomize ($3) differ (see above)"
    fi
}
same "namespaced, default values = manifests/" default ""
same "clusterWide: true = manifests/cluster-wide/" cluster-wide-values cluster-wide
same "feed.url = manifests/base/ + manifests/feed/" feed-values feed
same "hub.enabled = manifests/base/ + manifests/hub/" hub-values hub

step "Rendered values reach the objects (ci/*.yaml)"
before=${#failures[@]}
ha="$out/helm-ha-namespaced-values.yaml"
for want in \
    'image: "ghcr.io/miracum/miracolix-operator@sha256:0123456789abcdef' \
    'kind: PodDisruptionBudget' \
    'kind: ServiceMonitor' \
    'secretName: miracum-consortium-keys' \
    '- --leader-elect' \
    'cidr: 10.0.0.0/24'; do
    grep -qF -- "$want" "$ha" 2>/dev/null || fail "ha-namespaced render lacks: $want"
done
python3 - "$ha" "$out/helm-default.yaml" <<'PY' || fail "crds.manageOnStartup does not control patch on CRDs"
import sys, yaml
def crd_patch(path):
    return any("customresourcedefinitions" in r.get("resources", []) and "patch" in r.get("verbs", [])
               for o in yaml.safe_load_all(open(path)) if o and o["kind"] == "ClusterRole"
               for r in o.get("rules", []))
sys.exit(0 if not crd_patch(sys.argv[1]) and crd_patch(sys.argv[2]) else 1)
PY
tk="$out/helm-trusted-keys-values.yaml"
for want in 'miracum-2025.pem: |' 'miracum-2026.pem: |' 'checksum/trusted-keys:' 'type: Recreate'; do
    grep -qF -- "$want" "$tk" 2>/dev/null || fail "trusted-keys render lacks: $want"
done
ho="$out/helm-hub-options-values.yaml"
for want in 'kind: Ingress' 'host: "hub.miracum.example"' 'secretName: "hub-tls"' 'ingressClassName: "nginx"' \
    'claimName: hub-reports' '- --public-read' '- --signature-threshold' 'name: miracolix-operator-hub-sites' \
    'checksum/hub-sites:' 'kubernetes.io/metadata.name: ingress-nginx' '"siteId": "erlangen"' \
    'name: miracolix-operator-hub-sites' 'app.kubernetes.io/component: hub'; do
    grep -qF -- "$want" "$ho" 2>/dev/null || fail "hub-options render lacks: $want"
done
for unwanted in 'kind: PersistentVolumeClaim' '- --readers'; do
    ! grep -qF -- "$unwanted" "$ho" 2>/dev/null || fail "hub-options render has: $unwanted"
done
[ "$(python3 -c 'import sys,yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ServiceMonitor" and d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "miracolix-hub"))' "$ho")" = 1 ] ||
    fail "hub-options render (serviceMonitor on) lacks the hub's ServiceMonitor"
hp="$out/helm-hub-postgres-values.yaml"
for want in 'name: HUB_DATABASE' 'name: hub-database' '- --database-ca-file' 'name: hub-database-ca' \
    'cidr: 10.40.12.0/24' 'port: 5432' 'type: RollingUpdate'; do
    grep -qF -- "$want" "$hp" 2>/dev/null || fail "hub-postgres render lacks: $want"
done
for unwanted in 'kind: PersistentVolumeClaim' '- --state-dir'; do
    ! grep -qF -- "$unwanted" "$hp" 2>/dev/null || fail "hub-postgres render has: $unwanted"
done
grep -qF 'kind: PersistentVolumeClaim' "$out/helm-hub-values.yaml" ||
    fail "hub render (default hub values) lacks its PersistentVolumeClaim"
! grep -qF 'miracolix-hub' "$out/helm-default.yaml" || fail "the default render has hub objects (hub.enabled is off)"
[ ${#failures[@]} -eq "$before" ] && echo "  ok"

step "The release pins the chart's default image by digest (the edit .github/workflows/release.yml makes)"
# The workflow replaces the one line `  digest: ""` of values.yaml with the release's index digest;
# the same edit on a copy must yield a Deployment that pulls repository@digest.
release_digest="sha256:$(printf release | sha256sum | cut -d' ' -f1)"
if [ "$(grep -c '^  digest: ""$' "$CHART/values.yaml")" != 1 ]; then
    fail "values.yaml must have exactly one line '  digest: \"\"' (image.digest) for the release workflow to pin"
else
    cp -r "$CHART" "$out/release-chart"
    sed -i "s|^  digest: \"\"|  digest: \"${release_digest}\"|" "$out/release-chart/values.yaml"
    if "$HELM" template "$RELEASE" "$out/release-chart" -n "$NAMESPACE" 2>&1 |
        grep -q "image: \"\{0,1\}ghcr.io/miracum/miracolix-operator@${release_digest}"; then
        echo "  image: ghcr.io/miracum/miracolix-operator@sha256:…"
    else
        fail "a chart with image.digest set does not pull the image by that digest"
    fi
fi

step "Invalid values are refused"
refuse() { # name, expected text in the error, values YAML
    printf '%s\n' "$3" >"$out/bad-$1.yaml"
    if "$HELM" template "$RELEASE" "$CHART" -n "$NAMESPACE" -f "$out/bad-$1.yaml" >/dev/null 2>"$out/bad-$1.log"; then
        fail "helm template accepted invalid values ($1): $3"
    elif ! grep -qF -- "$2" "$out/bad-$1.log"; then
        cat "$out/bad-$1.log" >&2
        fail "helm template refused $1, but without mentioning '$2'"
    else
        echo "  refused $1: $(grep -m1 -F -- "$2" "$out/bad-$1.log" | sed 's/^ *//' | cut -c1-110)"
    fi
}
refuse replicas-string replicas 'replicas: "two"'
refuse replicas-zero replicas 'replicas: 0'
refuse unknown-key replica 'replica: 2'
refuse log-level logLevel 'logLevel: loud'
refuse digest digest 'image: {digest: "sha256:abc"}'
refuse namespace watchNamespaces 'watchNamespaces: [Diz_Erlangen]'
refuse no-namespaces 'watchNamespaces is empty' 'watchNamespaces: []'
refuse cluster-wide-type clusterWide 'clusterWide: "yes"'
refuse not-a-key 'a PEM public key' 'trustedKeys: {keys: {k1: "hello"}}'
# A private key given by mistake is refused without being printed: CI logs keep helm's output.
secret_marker="MC4CAQAwBQYDK2VwBCIEINOTPRINTEDNOTPRINTED"
for case in 'private-only|-----BEGIN PRIVATE KEY-----\n'"$secret_marker"'\n-----END PRIVATE KEY-----' \
    'public-and-private|-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n-----BEGIN PRIVATE KEY-----\n'"$secret_marker"'\n-----END PRIVATE KEY-----' \
    'ec-private|-----BEGIN EC PRIVATE KEY-----\n'"$secret_marker"'\n-----END EC PRIVATE KEY-----'; do
    refuse "key-${case%%|*}" 'contains a PRIVATE KEY (not printed here)' "trustedKeys: {keys: {k1: \"${case#*|}\"}}"
    if grep -qF -- "$secret_marker" "$out/bad-key-${case%%|*}.log"; then
        fail "helm printed the private key of case ${case%%|*} in its error"
    fi
done
refuse both-secrets 'either existingSecret or keys' 'trustedKeys: {existingSecret: s, keys: {k1: "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----"}}'
refuse api-cidr apiServerCIDR 'networkPolicy: {apiServerCIDR: everywhere}'
refuse feed-url /feed/url 'feed: {url: hub.example}'
refuse hub-ingress-host 'hub.ingress.host is required' 'hub: {enabled: true, ingress: {enabled: true}}'
refuse hub-public-and-readers 'hub.readers' 'hub: {enabled: true, readers: {publicRead: true, existingSecret: r}}'
refuse hub-sites-both 'hub.sites' 'hub: {enabled: true, sites: {existingConfigMap: s, registry: {sites: []}}}'
refuse hub-site-key ed25519 'hub: {enabled: true, sites: {registry: {sites: [{siteId: erlangen, keys: [{keyId: k, ed25519: "not-a-key"}]}]}}}'
refuse hub-threshold signatureThreshold 'hub: {feed: {signatureThreshold: 0}}'
refuse hub-replicas-sqlite 'hub.replicas > 1 needs hub.database' 'hub: {enabled: true, replicas: 2}'
refuse hub-db-cidr egressCIDR 'hub: {database: {egressCIDR: db.example}}'

elapsed=$(( $(date +%s) - start ))
if [ ${#failures[@]} -ne 0 ]; then
    echo "chart-test: ${#failures[@]} failure(s) in ${elapsed}s:" >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "chart-test: all checks passed in ${elapsed}s"
