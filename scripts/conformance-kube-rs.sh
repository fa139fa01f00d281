#!/usr/bin/env bash
# `make conformance-kube-rs`: run kube-rs's own cluster tests (the `#[ignore]`d tests that need a
# cluster, in the published sources of kube, kube-client and kube-runtime at the version in
# Cargo.lock) against a freshly started miracolix-testapi, an outside judge of the test API
# server. Prints pass / fail / not supported per test with the reason, and a summary line.
#
#   scripts/conformance-kube-rs.sh [SUBSTRING]   run only tests whose path contains SUBSTRING
#
# Environment:
#   KUBE_RS_SCRATCH       scratch dir (default: $CARGO_TARGET_DIR/kube-rs-conformance or target/...):
#                         crate copies, their shared target dir, logs, results.tsv and results.md
#   KUBE_RS_TEST_TIMEOUT  seconds per test (default 120)
#   KUBE_RS_SRC           optional kube-rs git dir or checkout: also build and run its e2e programs
#                         (e2e/boot.rs, e2e/job.rs; not in the published crates), from the tag
#                         matching the version when it has one
#
# Tests that need what the server deliberately does not serve are listed, with why the operator
# never needs it, in scripts/kube-rs-not-supported.tsv; they are reported and not run.
# Exit status: 0 when no test failed, 1 otherwise, 2 when the run itself could not be set up.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

project_target="${CARGO_TARGET_DIR:-$root/target}"
scratch="${KUBE_RS_SCRATCH:-$project_target/kube-rs-conformance}"
not_supported="$root/scripts/kube-rs-not-supported.tsv"
test_timeout="${KUBE_RS_TEST_TIMEOUT:-120}"
filter="${1:-}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

die() { echo "conformance-kube-rs: $*" >&2; exit 2; }
command -v jq >/dev/null || die "jq is required (reads cargo's JSON messages)"

# The version of each crate as the project locks it (they are released together).
locked_version() {
  awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}
version=$(locked_version kube)
[ -n "$version" ] || die "no kube in Cargo.lock"

mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
# One target dir for the three crates: their published lock files pin the same dependency
# versions, so what one build compiles the next one reuses.
export CARGO_TARGET_DIR="$scratch/target"

# Copy a published crate into the scratch dir, as a standalone package (own workspace).
# Prefer the unpacked registry sources; fall back to the downloaded .crate archive.
copy_crate() {
  local crate=$1 v dest src archive
  v=$(locked_version "$crate")
  dest="$scratch/src/$crate-$v"
  # Prepared by an earlier run (same manifest edits): keep it, so cargo does not rebuild it.
  local stamp
  stamp="$(cksum <"$root/scripts/conformance-kube-rs.sh" | cut -d' ' -f1) $(cksum <"$root/Cargo.lock" | cut -d' ' -f1)"
  if [ "$(cat "$dest/.conformance-kube-rs" 2>/dev/null)" = "$stamp" ]; then
    echo "$dest"
    return
  fi
  rm -rf "$dest"
  mkdir -p "$scratch/src"
  src=$(ls -d "$cargo_home"/registry/src/*/"$crate-$v" 2>/dev/null | head -n1 || true)
  if [ -z "$src" ]; then
    (cd "$root" && cargo fetch --locked -q) || die "cargo fetch failed"
    src=$(ls -d "$cargo_home"/registry/src/*/"$crate-$v" 2>/dev/null | head -n1 || true)
  fi
  if [ -n "$src" ]; then
    cp -R "$src" "$dest"
  else
    archive=$(ls "$cargo_home"/registry/cache/*/"$crate-$v.crate" 2>/dev/null | head -n1 || true)
    [ -n "$archive" ] || die "sources of $crate $v not found under $cargo_home/registry"
    tar -xzf "$archive" -C "$scratch/src"
  fi
  chmod -R u+w "$dest"
  # `cargo package` drops path-only dev-dependencies: kube-client's and kube-runtime's tests
  # `use kube::...`, which their workspace provides as `kube = { path = "../kube", ... }`.
  # Restore it from the original manifest, as the published `kube` of the same version.
  local features
  features=$(sed -n 's/^kube = { *path = "\.\.\/kube", *\(features = \[[^]]*\]\) *}.*$/\1/p' \
    "$dest/Cargo.toml.orig" 2>/dev/null || true)
  if [ -n "$features" ] && ! grep -q '^\[dev-dependencies\.kube\]' "$dest/Cargo.toml"; then
    printf '\n[dev-dependencies.kube]\nversion = "=%s"\n%s\n' "$v" "$features" >>"$dest/Cargo.toml"
  fi
  # Its own workspace, so cargo does not look for one above the scratch dir.
  printf '\n[workspace]\n' >>"$dest/Cargo.toml"
  # Dependency versions: the project's own lock file as the starting point (cargo adds the
  # test-only crates), so the tests run with the versions the operator is built with and the
  # crates already downloaded for it. The published lock files pin whatever was newest at
  # release, which the registry reachable here may not serve yet.
  cp "$root/Cargo.lock" "$dest/Cargo.lock"
  echo "$stamp" >"$dest/.conformance-kube-rs"
  echo "$dest"
}

# Build a crate's library tests once; print the test executable.
build_tests() {
  local dir=$1 features=$2 name exe
  name=$(basename "$dir" | sed 's/-[0-9][0-9.]*$//; s/-/_/g')
  exe=$(cargo test --manifest-path "$dir/Cargo.toml" --lib --no-run --features "$features" \
    --message-format=json-render-diagnostics 2>"$scratch/logs/build-$name.log" |
    jq -r --arg n "$name" 'select(.reason == "compiler-artifact" and .profile.test
      and .target.name == $n and .executable != null) | .executable' | tail -n1) || true
  [ -n "$exe" ] || { tail -30 "$scratch/logs/build-$name.log" >&2; die "building $name's tests failed"; }
  echo "$exe"
}

# fn name -> ignore reason, for every `#[ignore = "..."]` test in a crate's sources (a test
# attribute that is commented out upstream, i.e. a hard-disabled test, does not count).
ignore_reasons() {
  find "$1/src" -name '*.rs' -print0 | xargs -0 awk '
    /^[[:space:]]*#\[(tokio::)?test[](]/ { t = 1; next }
    /^[[:space:]]*#\[ignore = "/ { r = $0; sub(/^[^"]*"/, "", r); sub(/"\].*$/, "", r); left = 6; next }
    /fn [A-Za-z0-9_]+/ {
      if (left > 0 && t) { m = $0; sub(/^.*fn /, "", m); sub(/[^A-Za-z0-9_].*$/, "", m); print m "\t" r }
      left = 0; t = 0; next
    }
    left > 0 { left-- }'
}

# The first line that says why a test failed.
failure_reason() {
  local log=$1 rc=$2 line
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "timed out after ${test_timeout}s"; return; fi
  line=$(grep -m1 '^Error: ' "$log" || true)
  [ -n "$line" ] || line=$(grep -m1 -A1 'panicked at' "$log" | tail -n1 || true)
  [ -n "$line" ] || line=$(grep -m1 -i 'error' "$log" || true)
  [ -n "$line" ] || line="exit status $rc (see $log)"
  echo "$line" | tr '\t' ' ' | cut -c1-400
}

mkdir -p "$scratch/logs"
results="$scratch/results.tsv"
: >"$results"
record() { # crate test result reason
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"
  printf '%-14s %s::%s%s\n' "$3" "$1" "$2" "${4:+ — $4}"
}

echo "==> kube-rs $version: copying the published crates to $scratch/src"
kube_dir=$(copy_crate kube)
client_dir=$(copy_crate kube-client)
runtime_dir=$(copy_crate kube-runtime)

# Features: what the cluster tests are gated on (`#[cfg(feature = ...)]`, including the
# `unstable-client` module of client_ext), on top of the defaults. kube-rs's CI uses
# --all-features; the rest (aws-lc-rs, oauth, oidc, proxies, gzip) gates no cluster test and
# would only add C toolchains to the build.
echo "==> building their library tests (shared target dir $CARGO_TARGET_DIR)"
declare -A exe dir
dir[kube]=$kube_dir
dir[kube-client]=$client_dir
dir[kube-runtime]=$runtime_dir
exe[kube]=$(build_tests "$kube_dir" "derive,runtime")
exe[kube-client]=$(build_tests "$client_dir" "ws,openssl-tls,kubelet-debug,unstable-client")
exe[kube-runtime]=$(build_tests "$runtime_dir" "")

e2e_programs=()
if [ -n "${KUBE_RS_SRC:-}" ]; then
  echo "==> building kube-rs's e2e programs from $KUBE_RS_SRC"
  e2e_dir="$scratch/src/kube-rs-e2e"
  rm -rf "$e2e_dir" && mkdir -p "$e2e_dir/src/bin"
  e2e_note=""
  if git -C "$KUBE_RS_SRC" rev-parse --git-dir >/dev/null 2>&1; then
    ref=$version
    if ! git -C "$KUBE_RS_SRC" rev-parse -q --verify "refs/tags/$ref" >/dev/null; then
      ref=HEAD
      e2e_note="programs from $(git -C "$KUBE_RS_SRC" describe --tags HEAD 2>/dev/null || echo HEAD); tag $version not in $KUBE_RS_SRC"
    fi
    for p in boot job; do
      git -C "$KUBE_RS_SRC" show "$ref:e2e/$p.rs" >"$e2e_dir/src/bin/$p.rs" || die "no e2e/$p.rs in $KUBE_RS_SRC"
    done
  else
    for p in boot job; do cp "$KUBE_RS_SRC/e2e/$p.rs" "$e2e_dir/src/bin/" || die "no e2e/$p.rs in $KUBE_RS_SRC"; done
  fi
  # The dependencies and features of kube-rs's e2e/Cargo.toml (rustls, latest), as published crates.
  cat >"$e2e_dir/Cargo.toml" <<EOF
[package]
name = "kube-rs-e2e"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
anyhow = "1"
tracing = "0.1"
tracing-subscriber = "0.3"
kube = { version = "=$version", default-features = false, features = ["client", "runtime", "ws", "admission", "gzip", "rustls-tls", "ring"] }
k8s-openapi = { version = "=$(locked_version k8s-openapi)", features = ["latest"] }
serde_json = "1"
tokio = { version = "1", features = ["full"] }

[workspace]
EOF
  cp "$root/Cargo.lock" "$e2e_dir/Cargo.lock"
  cargo build --manifest-path "$e2e_dir/Cargo.toml" --bins >"$scratch/logs/build-e2e.log" 2>&1 ||
    { tail -30 "$scratch/logs/build-e2e.log" >&2; die "building kube-rs's e2e programs failed"; }
  e2e_programs=(boot job)
fi

echo "==> starting miracolix-testapi"
(cd "$root" && env CARGO_TARGET_DIR="$project_target" cargo build --locked -q -p miracolix-e2e --bin miracolix-testapi) ||
  die "building miracolix-testapi failed"
rm -f "$scratch/kubeconfig"
"$project_target/debug/miracolix-testapi" --port 0 --kubeconfig "$scratch/kubeconfig" \
  >"$scratch/logs/testapi.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$scratch/kubeconfig" ] && break; sleep 0.1; done
[ -s "$scratch/kubeconfig" ] || { cat "$scratch/logs/testapi.log" >&2; die "the test API server did not start"; }
export KUBECONFIG="$scratch/kubeconfig"
# The server is on 127.0.0.1; a proxy from the environment must not be asked for it.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
unset KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT

echo "==> running the cluster tests one at a time"
for crate in kube kube-client kube-runtime; do
  reasons=$(ignore_reasons "${dir[$crate]}")
  listed=$("${exe[$crate]}" --list --ignored 2>/dev/null | sed -n 's/: test$//p')
  # A cluster test in the sources that the build left out is a gap in the features above.
  while IFS=$'\t' read -r fn reason; do
    printf '%s' "$reason" | grep -Eqi 'cluster|kubeconfig|kubelet' || continue
    printf '%s\n' "$listed" | grep -Eq "(^|::)$fn\$" && continue
    case "$fn" in *"$filter"*) record "$crate" "$fn" "fail" "not compiled: a feature this script does not enable gates it" ;; esac
  done <<<"$reasons"
  while IFS= read -r path; do
    [ -n "$path" ] || continue
    fn=${path##*::}
    reason=$(printf '%s\n' "$reasons" | awk -F'\t' -v f="$fn" '$1 == f { print $2; exit }')
    # Ignored for another reason (e.g. shells out, fails on windows): not a cluster test.
    printf '%s' "$reason" | grep -Eqi 'cluster|kubeconfig|kubelet' || continue
    case "$path" in *"$filter"*) ;; *) continue ;; esac
    why=$(awk -F'\t' -v c="$crate" -v t="$path" '$1 == c && $2 == t { print $3; exit }' "$not_supported")
    if [ -n "$why" ]; then
      record "$crate" "$path" "not supported" "$why"
      continue
    fi
    log="$scratch/logs/$crate--${path//::/--}.log"
    rc=0
    (cd "${dir[$crate]}" && timeout --kill-after=5 "$test_timeout" \
      "${exe[$crate]}" --ignored --exact "$path" --test-threads=1) >"$log" 2>&1 || rc=$?
    if [ "$rc" = 0 ] && grep -q '^test result: ok. 1 passed' "$log"; then
      record "$crate" "$path" "pass" ""
    elif [ "$rc" = 0 ]; then
      record "$crate" "$path" "fail" "did not run (no test matched; see $log)"
    else
      record "$crate" "$path" "fail" "$(failure_reason "$log" "$rc")"
    fi
  done <<<"$listed"
done

for p in "${e2e_programs[@]}"; do
  case "e2e::$p" in *"$filter"*) ;; *) continue ;; esac
  log="$scratch/logs/e2e--$p.log"
  rc=0
  timeout --kill-after=5 "$test_timeout" "$CARGO_TARGET_DIR/debug/$p" >"$log" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    record "kube-rs e2e" "$p" "pass" "$e2e_note"
  else
    record "kube-rs e2e" "$p" "fail" "$(failure_reason "$log" "$rc")${e2e_note:+ ($e2e_note)}"
  fi
done

# The same results as a Markdown table, for docs/testing.md.
{
  echo "| test | result | reason |"
  echo "|---|---|---|"
  awk -F'\t' '{ r = $4; gsub(/\|/, "\\|", r); printf "| `%s` `%s` | %s | %s |\n", $1, $2, $3, r }' "$results"
} >"$scratch/results.md"

[ -n "${KUBE_RS_SRC:-}" ] ||
  echo "(kube-rs's e2e programs boot and job are not in the published crates: set KUBE_RS_SRC to a kube-rs git dir to run them too)"
passed=$(awk -F'\t' '$3 == "pass"' "$results" | wc -l)
failed=$(awk -F'\t' '$3 == "fail"' "$results" | wc -l)
unsupported=$(awk -F'\t' '$3 == "not supported"' "$results" | wc -l)
echo
echo "kube-rs $version cluster tests against miracolix-testapi: $passed passed, $failed failed, $unsupported not supported ($(wc -l <"$results") tests; results in $scratch/results.md)"
[ "$failed" = 0 ]
