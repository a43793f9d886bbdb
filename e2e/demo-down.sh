#!/usr/bin/env bash
# Stops what `make demo` started (sidecar, operator, anvil) and the local control plane.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=$(dirname "$here")/.kontrakt/demo
for name in sidecar operator anvil; do
  [ -f "$run/$name.pid" ] || continue
  kill "$(cat "$run/$name.pid")" 2>/dev/null && echo "stopped $name"
  rm -f "$run/$name.pid"
done
rm -rf "$run/shipping-pod"
"$here/cluster-down.sh"
