# miracolix-operator — common tasks. Every target works offline once crates are fetched.
CARGO ?= cargo
KUBECONFIG_SIM ?= $(CURDIR)/target/sim/kubeconfig

tools: ## Install the command-line tools the tests shell out to: helm, kubectl, actionlint into .tools/bin; buildah, bubblewrap, shellcheck, chromium (apt); pip (idempotent)
	scripts/install-tools.sh

# cargo-deny with the RustSec advisory snapshot, from the shared directory next to the repository
# (GitHub, where cargo-deny fetches advisories, is unreachable from the build machines).
CARGO_DENY ?= $(abspath $(CURDIR)/../shared/tools/cargo-deny-offline)

.PHONY: tools build test chart-test image image-test crds docs lint actionlint deny sbom fmt e2e e2e-kind conformance-kube-rs protobuf-schema sim demo bench soak clean

build: ## Build the operator and the test API server
	$(CARGO) build --locked --workspace --all-targets

test: tools chart-test image-test ## Run every test: unit, CRD/example validation, conformance of the test API server, e2e, install artefacts, the image
	$(CARGO) test --locked --workspace --all-targets

image: tools ## The operator image as an OCI archive, no container engine: target/image/miracolix-operator-<version>-linux-<arch>.oci.tar (+ .cdx.json SBOM, .digest)
	scripts/image.sh

image-test: image ## Unpack the image and run it as uid 65532 on a read-only root (bubblewrap); config, labels, files, size budget, Dockerfile equivalence
	python3 scripts/image_test.py

chart-test: tools ## Helm chart + kustomize base: lint, render, validate against Kubernetes 1.33, chart = kustomize, schema refuses bad values
	scripts/chart-test.sh

crds: ## Regenerate crds/ from the Rust types, then every generated page of docs/ (make docs)
	$(CARGO) run --locked -q -p miracolix-operator -- crds --out-dir crds
	cp crds/*.yaml charts/miracolix-operator/crds/
	$(MAKE) --no-print-directory docs

docs: ## Regenerate the pages of docs/ that come from the code: reference, components, conditions, metrics, cli
	$(CARGO) run --locked -q -p miracolix-operator -- reference > docs/reference.md
	$(CARGO) run --locked -q -p miracolix-operator -- components > docs/components.md
	$(CARGO) run --locked -q -p miracolix-operator -- docs conditions > docs/conditions.md
	$(CARGO) run --locked -q -p miracolix-operator -- docs metrics > docs/metrics.md
	$(CARGO) run --locked -q -p miracolix-operator -- docs cli > docs/cli.md

lint: ## cargo fmt --check, clippy with warnings as errors, cargo deny check, actionlint on .github/workflows
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory deny
	$(MAKE) --no-print-directory actionlint

actionlint: tools ## Check the GitHub workflows (.github/workflows/*.yml) with actionlint (and shellcheck on their run: steps)
	.tools/bin/actionlint -no-color -pyflakes= && echo "actionlint: .github/workflows ok"

deny: ## cargo deny check (advisories, licenses, bans, sources) against deny.toml, offline
	@test -x "$(CARGO_DENY)" || { echo "make deny: $(CARGO_DENY) is missing. cargo-deny runs offline from ../shared/tools/cargo-deny-offline (the shared directory beside the repository, with the RustSec advisory snapshot); check out ../shared next to this repository or set CARGO_DENY to a cargo-deny wrapper." >&2; exit 2; }
	$(CARGO) fetch --locked
	$(CARGO_DENY)

sbom: ## CycloneDX SBOM of the operator image: target/sbom/miracolix-operator.cdx.json (make image writes one next to each archive)
	python3 scripts/sbom.py -o target/sbom/miracolix-operator.cdx.json

fmt:
	$(CARGO) fmt --all

e2e: ## End-to-end suite: real kubectl + real operator binary against the test API server (or E2E_KUBECONFIG)
	$(CARGO) test --locked -p miracolix-operator --test e2e_cluster
	$(CARGO) test --locked -p miracolix-e2e --test dizsite_controller

demo: ## Main job: test API server + kubectl + operator until the example sites are Ready
	scripts/demo.sh

conformance-kube-rs: ## kube-rs's own cluster tests (published kube, kube-client, kube-runtime at the locked version) against the test API server; slow (builds them once), not part of make test; KUBE_RS_SRC=<kube-rs git dir> adds its e2e programs
	scripts/conformance-kube-rs.sh

e2e-kind: image ## Same e2e suite on a kind cluster with the image of make image (needs Docker, kind and skopeo; not on the build machines)
	scripts/e2e-kind.sh

protobuf-schema: ## Regenerate e2e/src/apiserver/protobuf_schema.json (test API server's protobuf decoding) from k8s-pb and kubernetes-validate
	python3 scripts/gen_protobuf_schema.py

bench: ## Benchmark (not a test): release builds, the test API server and the operator as processes, BENCH_SITES sites (default 200); prints converge time, peak RSS, requests per no-op resync and at steady state, render time (docs/performance.md)
	scripts/bench.sh

soak: ## Convergence under faults (minutes; SOAK_SITES=10, SOAK_SECS=60 of fault storm per phase, SOAK_SEED=13): 5 % API errors, dropped and expired watches, leader change, restarts; prints the figures (e2e/tests/soak.rs)
	$(CARGO) test --locked --release -p miracolix-e2e --test soak -- --ignored --nocapture soak_from_environment

sim: ## Start the test API server in the foreground and print how to use kubectl with it
	$(CARGO) run --locked -q -p miracolix-e2e --bin miracolix-testapi -- --kubeconfig $(KUBECONFIG_SIM)

clean:
	$(CARGO) clean
