#!/usr/bin/env bash
# Tears down the local control plane started by cluster-up.sh (all its processes and state).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
name=${KONTRAKT_CLUSTER:-kontrakt}
state=${KONTRAKT_STATE:-$repo/.kontrakt}
cache_root=${KONTRAKT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kontrakt}
export KWOK_WORKDIR=$cache_root/kwok
[ -x "$state/bin/kwokctl" ] || { echo "no local control plane to tear down" >&2; exit 0; }
"$state/bin/kwokctl" delete cluster --name "$name" --kubeconfig "$state/kubeconfig" >&2 || true
rm -f "$state/kubeconfig" "$state/kwokctl.yaml"
