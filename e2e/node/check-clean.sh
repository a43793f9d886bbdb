#!/usr/bin/env bash
# Fails (exit 1, naming each thing) if anything of this cluster's real node is
# left on the host after down.sh: a process, a mount or netns under its state,
# a cgroup, the bridge or a veth on it, a CNI cache entry, a KUBE-* iptables
# chain, or a kernel setting that differs from before the kubelet started.
set -uo pipefail
source "$(dirname "$0")/common.sh"
left=()
add() { left+=("$1"); }

procs=$(pgrep -af -- "$dir/" || true)
[ -z "$procs" ] || add "processes: $procs"
relay=$(pgrep -af -- "TCP-LISTEN:$api_port,bind=$address," || true)
[ -z "$relay" ] || add "apiserver relay: $relay"
for f in kubelet.pid containerd.pid apiserver-relay.pid; do
  [ -f "$dir/$f" ] && kill -0 "$(cat "$dir/$f")" 2>/dev/null && add "$f $(cat "$dir/$f") still runs"
done
mounts=$(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts)
[ -z "$mounts" ] || add "mounts: $mounts"
for h in $(cgroup_hierarchies); do [ -d "$h/$cgroup" ] && add "cgroup $h/$cgroup"; done
ip link show "$bridge" >/dev/null 2>&1 && add "bridge $bridge"
veths=$(ip -o link show master "$bridge" 2>/dev/null || true)
[ -z "$veths" ] || add "veths on $bridge: $veths"
ls /var/lib/cni/results/"$cni_net"-* >/dev/null 2>&1 && add "CNI cache /var/lib/cni/results/$cni_net-*"
for ipt in iptables ip6tables; do
  command -v "$ipt-save" >/dev/null || continue
  chains=$("$ipt-save" 2>/dev/null | grep -o '^:KUBE-[A-Z-]*' | sort -u | tr '\n' ' ')
  [ -z "$chains" ] || add "$ipt chains: $chains"
done
others=$(other_nodes)
if [ -n "$others" ]; then
  echo "kernel settings not compared: another real node still runs ($others)" >&2
elif [ -s "$dir/sysctl.before" ]; then
  while IFS== read -r key value; do
    now=$(sysctl -n "$key")
    [ "$now" = "$value" ] || add "sysctl $key=$now (was $value)"
  done < "$dir/sysctl.before"
fi
[ -d "$dir/containerd" ] && add "containerd state $dir/containerd"

if [ ${#left[@]} -gt 0 ]; then
  echo "real node $node_name left things behind:" >&2
  printf '  %s\n' "${left[@]}" >&2
  exit 1
fi
echo "real node $node_name: nothing left (processes, mounts, netns, cgroups, $bridge, CNI cache, KUBE-* chains, kernel settings)"
