#!/usr/bin/env bash
# `make e2e-kind`: the e2e suite on a real kind cluster, with the image `make image` built and
# `make image-test` tested (target/image/*.oci.tar), not a separate Docker build. Needs docker,
# kind and skopeo (not available on the project's build machines: there, `make e2e` runs the same
# suite against the test API server).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${KIND_CLUSTER:-miracolix-e2e}
image=${IMAGE:-miracolix-operator:e2e}
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
arch=$(case "$(uname -m)" in x86_64) echo amd64 ;; aarch64 | arm64) echo arm64 ;; *) uname -m ;; esac)
archive=target/image/miracolix-operator-${version}-linux-${arch}.oci.tar
[ -f "$archive" ] || { echo "e2e-kind: $archive is missing: run make image" >&2; exit 2; }
for tool in docker kind kubectl skopeo; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 2; }
done
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster"
kubeconfig=$(mktemp)
trap 'rm -f "$kubeconfig"' EXIT
kind get kubeconfig --name "$cluster" >"$kubeconfig"
# kind loads image archives into the nodes' containerd; a docker-archive names the image by its
# RepoTags, which every containerd version imports under that name (an OCI archive's ref.name
# annotation is handled differently across versions).
docker_archive=$(mktemp --suffix=.tar)
trap 'rm -f "$kubeconfig" "$docker_archive"' EXIT
rm -f "$docker_archive"
skopeo copy --quiet "oci-archive:${archive}" "docker-archive:${docker_archive}:${image}"
kind load image-archive "$docker_archive" --name "$cluster"
export KUBECONFIG="$kubeconfig"
kubectl apply --server-side -f crds/
kubectl apply --server-side -k manifests/
kubectl -n miracolix-system set image deployment/miracolix-operator operator="$image"
kubectl -n miracolix-system create secret generic miracolix-trusted-keys \
  --from-file=examples/trusted-keys/ --dry-run=client -o yaml | kubectl apply --server-side -f -
kubectl -n miracolix-system rollout status deployment/miracolix-operator --timeout=180s
E2E_KUBECONFIG="$kubeconfig" E2E_OPERATOR=external \
  cargo test --locked -p miracolix-operator --test e2e_cluster -- --nocapture
