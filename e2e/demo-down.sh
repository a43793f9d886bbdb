#!/usr/bin/env bash
# Stops what `make demo` started (sidecar, operator, anvil) and the local control plane.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=$(dirname "$here")/.kontrakt/demo
for name in sidecar operator anvil; do
  [ -f "$run/$name.pid" ] || continue
  pid=$(cat "$run/$name.pid")
  # anvil runs in a process group of its own (wrapper + binary): stop the group.
  { kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null; } && echo "stopped $name"
  rm -f "$run/$name.pid"
done
rm -rf "$run/shipping-pod"
"$here/cluster-down.sh"
