#!/usr/bin/env bash
# make bench: release builds of the operator and the test API server, then the benchmark driver
# (e2e/examples/bench.rs) with BENCH_SITES sites (default 200). Prints the figures recorded in
# docs/performance.md. Not a test: nothing here passes or fails on timing.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
$CARGO build --locked --release -p miracolix-operator --bin miracolix-operator
$CARGO build --locked --release -p miracolix-e2e --bin miracolix-testapi --example bench
target_dir=${CARGO_TARGET_DIR:-target}
BENCH_BIN_DIR=${BENCH_BIN_DIR:-$target_dir/release} exec "$target_dir/release/examples/bench"
