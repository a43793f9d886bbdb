#!/usr/bin/env bash
# Tears down the local control plane started by cluster-up.sh (all its processes and state).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
name=${KONTRAKT_CLUSTER:-kontrakt}
state=${KONTRAKT_STATE:-$repo/.kontrakt}
cache_root=${KONTRAKT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kontrakt}
export KWOK_WORKDIR=$cache_root/kwok
# The real node first (its kubelet stops its pods through the apiserver); a no-op without one.
"$here/node/down.sh"
[ -x "$state/bin/kwokctl" ] || { echo "no local control plane to tear down" >&2; exit 0; }
"$state/bin/kwokctl" delete cluster --name "$name" --kubeconfig "$state/kubeconfig" >&2 || true
# kwokctl stops only the processes it started: a component restarted by
# restart-apiserver.sh would survive. Stop whatever still runs from this cluster.
leftovers() { pgrep -f "^$KWOK_WORKDIR/clusters/$name/bin/" || true; }
if [ -n "$(leftovers)" ]; then
  leftovers | xargs -r kill 2>/dev/null || true
  for _ in $(seq 50); do [ -z "$(leftovers)" ] && break; sleep 0.2; done
  leftovers | xargs -r kill -9 2>/dev/null || true
fi
rm -f "$state/kubeconfig" "$state/kwokctl.yaml"
