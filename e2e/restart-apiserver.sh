#!/usr/bin/env bash
# Restarts only the kube-apiserver of the local control plane (cluster-up.sh):
# the same binary and arguments, the same pid file, so kwokctl still manages
# it. etcd keeps the data; clients see the API go away and come back.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
name=${KONTRAKT_CLUSTER:-kontrakt}
cache_root=${KONTRAKT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kontrakt}
dir=$cache_root/kwok/clusters/$name
pidfile=$dir/pids/kube-apiserver.pid
pid=$(cat "$pidfile")
mapfile -d '' args < "/proc/$pid/cmdline"
kill "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
down=${DOWN_SECONDS:-2}
sleep "$down"
cd "$dir"
setsid "${args[@]}" >> "$dir/logs/kube-apiserver.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
export KUBECONFIG=${KUBECONFIG:-$repo/.kontrakt/kubeconfig}
for _ in $(seq 120); do
  "$repo/.kontrakt/bin/kubectl" get --raw /readyz >/dev/null 2>&1 && break
  sleep 0.5
done
"$repo/.kontrakt/bin/kubectl" get --raw /readyz >/dev/null || { echo "kube-apiserver did not come back" >&2; exit 1; }
# The rest of the control plane must have ridden it out.
for component in etcd kube-controller-manager kube-scheduler kwok-controller; do
  kill -0 "$(cat "$dir/pids/$component.pid")" 2>/dev/null || { echo "$component died during the restart" >&2; exit 1; }
done
echo "kube-apiserver restarted (down ${down}s)" >&2
