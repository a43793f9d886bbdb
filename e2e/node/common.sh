# Names and paths of one cluster's real node, shared by up.sh, down.sh and
# check-clean.sh (sourced). Everything is derived from the cluster name, so two
# clusters on one machine (a developer's, CI's) get their own bridge, subnet,
# cgroups and state.
node_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node_repo=$(dirname "$(dirname "$node_here")")
cluster=${KONTRAKT_CLUSTER:-kontrakt}
state=${KONTRAKT_STATE:-$node_repo/.kontrakt}
cache_root=${KONTRAKT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kontrakt}
export KWOK_WORKDIR=$cache_root/kwok
dir=$state/node/$cluster
node_name=$cluster-real-0
hash=$(printf %s "$cluster" | sha256sum | cut -c1-6)
# A bridge the script creates and owns; the node's address is on it, so neither
# the kubelet nor anything the pods reach listens on the machine's own interfaces.
bridge=${KONTRAKT_NODE_BRIDGE:-knt$hash}
prefix=${KONTRAKT_NODE_SUBNET:-10.88.$(( 16#${hash:0:2} % 200 + 20 ))}   # first three octets
address=$prefix.1
cgroup=kontrakt-$cluster
cni_net=kontrakt-$cluster
sock=$dir/containerd/containerd.sock
# Pods reach the apiserver (bound to 127.0.0.1) through a relay on this port of $address.
api_port=6443
# The settings the kubelet writes at start (protectKernelDefaults=false):
# recorded before it starts, put back by down.sh, compared by check-clean.sh.
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Every cgroup v1 hierarchy (hybrid hosts) plus the unified one.
cgroup_hierarchies() {
  if [ -e /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup; return; fi
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}; [ -L "$h" ] && continue
    [ -e "$h/cgroup.procs" ] && echo "$h"
  done
}
# The state dirs of the other real nodes whose kubelet runs on this host (another
# cluster, another clone): the kernel settings are the host's, shared by all of them.
other_nodes() {
  pgrep -a kubelet 2>/dev/null | grep -o -- '--config=[^ ]*/kubelet/config.yaml' |
    sed -e 's|^--config=||' -e 's|/kubelet/config.yaml$||' | grep -vxF "$dir" || true
}
