#!/usr/bin/env bash
# Stops what `make demo` started: the demo process (which stops anvil, the
# devices, the operator and the sidecars it runs, and deletes its namespaces),
# then the local control plane. Fails if a process of the demo is left.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=$(dirname "$here")/.kontrakt/demo
if pid=$(cat "$run/demo.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  # Whatever still runs in its session (a child that ignored SIGTERM) goes now.
  pkill -KILL -s "$pid" 2>/dev/null
  echo "stopped the demo (pid $pid)"
fi
rm -f "$run/demo.pid" "$run/report.json" "$run/summary.txt" "$run/buyer.key"
"$here/cluster-down.sh"
# A demo on the real node: nothing its kubelet or containerd made may survive.
if [ -d "$(dirname "$here")/.kontrakt/node" ]; then
  "$here/node/check-clean.sh" || exit 1
fi
if [ -n "${pid:-}" ] && pgrep -s "$pid" >/dev/null 2>&1; then
  echo "processes of the demo are still running:" >&2
  pgrep -a -s "$pid" >&2
  exit 1
fi
