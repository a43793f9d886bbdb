#!/usr/bin/env bash
# `make demo`: the product's main job on the embedded default, on this machine.
# Starts the local control plane, then `kontrakt-demo` (e2e/src/bin), which runs
# the demo scenario with the same harness as the e2e suite (e2e/src/demo.rs):
# anvil, two simulated devices, the chart's RBAC and the operator, the samples,
# the pods run by the pod runner (kwok runs no containers), an oracle request
# answered, a stream anchored, bought and verified. It ends in `kubectl get
# kontrakt` and a summary; everything keeps running for you to explore until
# `make demo-down`. Running it again while the demo is up shows it again.
# KONTRAKT_REAL_NODE=1 (`make demo REAL_NODE=1`): the cluster gets a real node and
# the operator and the pods run there as real containers (images from `make images`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
export DEMO_NAMESPACE=${DEMO_NAMESPACE:-kontrakt-demo}
# Where up.sh describes the real node (read by kontrakt-demo with KONTRAKT_REAL_NODE=1).
export KONTRAKT_REAL_NODE_ENV=${KONTRAKT_REAL_NODE_ENV:-$repo/.kontrakt/node/${KONTRAKT_CLUSTER:-kontrakt}/node.env}
ns=$DEMO_NAMESPACE
run=$repo/.kontrakt/demo
mkdir -p "$run"
target=${CARGO_TARGET_DIR:-$repo/target}
# The demo must finish within this many seconds (a cold machine builds first).
limit=${DEMO_TIMEOUT:-900}

step() { printf '\n== %s\n' "$*"; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

step "local control plane"
kubeconfig=$("$here/cluster-up.sh")
export KUBECONFIG=$kubeconfig PATH=$repo/.kontrakt/bin:$PATH

pid=$(cat "$run/demo.pid" 2>/dev/null || true)
if alive "$pid"; then
  echo "the demo is already running (pid $pid)"
else
  if [ -n "$pid" ]; then
    # A demo that died (or a machine restart): clear what it left before starting anew.
    echo "a previous demo (pid $pid) is gone; clearing what it left"
    kubectl delete namespace "$ns" kontrakt-system --ignore-not-found --wait --timeout=120s >/dev/null || true
  fi
  rm -f "$run/report.json" "$run/summary.txt" "$run/demo.pid"

  step "CRDs"
  kubectl apply --server-side -f "$repo/crds/" >/dev/null
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

  step "binaries (cargo build)"
  cargo build -q -p kontrakt-operator -p kontrakt-sidecar -p kontrakt-e2e --bins

  step "the demo (log: .kontrakt/demo/demo.log)"
  # A session of its own, so that demo-down can stop it and all it started.
  setsid "$target/debug/kontrakt-demo" "$run" > "$run/demo.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$run/demo.pid"
fi

# Show the demo's progress lines until it reports, fails, or runs out of time.
seen=0
progress() {
  local total
  total=$(wc -l < "$run/demo.log" 2>/dev/null || echo 0)
  [ "$total" -gt "$seen" ] && sed -n "$((seen + 1)),${total}p" "$run/demo.log" | grep '^== ' || true
  seen=$total
}
waited=0
until [ -f "$run/report.json" ]; do
  progress
  if ! alive "$pid"; then
    echo "the demo failed; the end of .kontrakt/demo/demo.log:" >&2
    tail -n 40 "$run/demo.log" >&2
    exit 1
  fi
  if [ "$waited" -ge "$limit" ]; then
    echo "the demo did not finish within ${limit}s; see .kontrakt/demo/demo.log (make demo-down stops it)" >&2
    exit 1
  fi
  sleep 1; waited=$((waited + 1))
done
progress

step "kubectl get kontrakt -n $ns"
kubectl get kontrakt -n "$ns"
echo
cat "$run/summary.txt"
echo "  export KUBECONFIG=$kubeconfig PATH=$repo/.kontrakt/bin:\$PATH"
