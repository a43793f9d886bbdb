#!/usr/bin/env bash
# Removes the real node up.sh added, and everything its kubelet and containerd
# made on the host: pods (stopped by the kubelet while it still runs), then the
# kubelet, containers, shims and containerd (by the PIDs recorded or by our
# socket path), mounts and netns under $dir, the cgroups, the bridge, host
# files, and the kernel settings the kubelet changed. Idempotent; check-clean.sh
# verifies the result.
set -uo pipefail
source "$(dirname "$0")/common.sh"
export KUBECONFIG=$state/kubeconfig PATH=$state/bin:$PATH
[ -d "$dir" ] || exit 0

stop() { # pid...: SIGTERM, up to 10 s, then SIGKILL
  local p
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for p in "$@"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null
  done
  true
}
pidof_file() { [ -f "$1" ] && cat "$1"; true; }
kubelet_pid=$(pidof_file "$dir/kubelet.pid")

# 1. While the kubelet runs, let it stop the pods: it unmounts their volumes and
# tears the sandboxes down (CNI DEL). Cordoned first so controllers' new pods stay Pending.
if [ -n "$kubelet_pid" ] && kill -0 "$kubelet_pid" 2>/dev/null && kubectl get --raw /readyz >/dev/null 2>&1; then
  kubectl cordon "$node_name" >/dev/null 2>&1
  kubectl delete pods -A --field-selector "spec.nodeName=$node_name" --grace-period=5 --wait --timeout=60s >/dev/null 2>&1
fi
stop $kubelet_pid $(pidof_file "$dir/apiserver-relay.pid")
# The relay forks one child per connection (a pod's watch can stay open): those go too.
stop $(pgrep -f -- "TCP-LISTEN:$api_port,bind=$address," || true)

# 2. Containers the kubelet did not stop, then containerd, then any shim of ours.
if [ -S "$sock" ]; then
  for t in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$sock" -n k8s.io tasks kill -s KILL "$t" >/dev/null 2>&1
  done
fi
stop $(pidof_file "$dir/containerd.pid")
stop $(pgrep -f -- "-address $sock" || true)
# Processes still in our cgroups (containers whose shim died first).
for h in $(cgroup_hierarchies); do
  [ -d "$h/$cgroup" ] && find "$h/$cgroup" -name cgroup.procs -exec cat {} + 2>/dev/null
done | sort -u | xargs -r kill -9 2>/dev/null
sleep 0.5

# 3. Mounts under $dir (overlay roots, shm, secret tmpfs, netns), deepest first.
for _ in 1 2 3; do
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
done

# 4. cgroups, deepest first (runc and the kubelet made them in every hierarchy).
for h in $(cgroup_hierarchies); do
  [ -d "$h/$cgroup" ] && find "$h/$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null
done

# 5. network: the bridge (the pods' veths went with their netns) and CNI's cache.
ip link del "$bridge" 2>/dev/null
rm -f /var/lib/cni/results/"$cni_net"-* 2>/dev/null
rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null

# 6. Host files outside $dir that the kubelet and containerd 1.6 use at fixed paths,
# removed only when nothing else (another node on this machine) is in them.
rmdir /run/containerd/s /run/containerd 2>/dev/null
if ! pgrep -x kubelet >/dev/null; then
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null
fi

# 7. Kernel settings back as they were before the kubelet started — by the last
# real node to go (another one's kubelet still needs them; it restores the same record).
if [ -s "$dir/sysctl.before" ] && [ -z "$(other_nodes)" ]; then
  while IFS== read -r key value; do sysctl -qw "$key=$value"; done < "$dir/sysctl.before"
fi

# 8. The node object, then our state (images, container roots, logs). The
# settings before are kept for check-clean.sh.
kubectl delete node "$node_name" --ignore-not-found --timeout=20s >/dev/null 2>&1
# --one-file-system: never into a mount that refused to go (check-clean.sh reports it).
find "$dir" -mindepth 1 -maxdepth 1 ! -name sysctl.before -exec rm -rf --one-file-system {} + 2>/dev/null
true
