#!/usr/bin/env bash
# Adds one real node (kubelet + containerd + runc + CNI bridge) to the local
# control plane cluster-up.sh started; cluster-up.sh runs this when
# KONTRAKT_REAL_NODE=1. Torn down by down.sh, which puts the host back.
#
# - kubelet: built from the control plane's Go module (build.sh), its own
#   identity (a system:node client certificate from the cluster's CA).
# - containerd, runc, CNI plugins: Debian's (containerd 1.6; see README.md "Real node").
#   Own root, state and socket under $dir; netns mounts under its state too.
# - network: bridge $bridge with $address/24, made here. Pods get addresses on it
#   and no default route: they reach the host (anvil, the apiserver relay) at
#   $address and nothing off the machine. No iptables rules, no ip_forward.
# - the apiserver: pods reach it through a relay at $address:$api_port.
# - images: a static pause image built here, and every archive `make images`
#   wrote to $state/images, imported into containerd.
# - the node is tainted kontrakt.dev/real-node:NoSchedule: only pods that ask
#   for it (a namespace with the real-node annotations, see node.env) run here;
#   kwok's fake nodes keep everything else.
set -euo pipefail
source "$(dirname "$0")/common.sh"
kubeconfig=$state/kubeconfig
export KUBECONFIG=$kubeconfig PATH=$state/bin:$PATH

need() { command -v "$1" >/dev/null || [ -x "$1" ] || { echo "real node: $1 is missing (apt-get install $2)" >&2; exit 1; }; }
need containerd containerd; need ctr containerd; need /usr/sbin/runc runc
need /usr/lib/cni/bridge containernetworking-plugins; need umoci umoci; need ip iproute2; need socat socat
bin=$("$node_here/build.sh")
pki=$KWOK_WORKDIR/clusters/$cluster/pki
[ -f "$pki/ca.key" ] || { echo "real node: no cluster CA at $pki: run e2e/cluster-up.sh first" >&2; exit 1; }
if [ -f "$dir/kubelet.pid" ] && kill -0 "$(cat "$dir/kubelet.pid")" 2>/dev/null; then
  echo "real node $node_name already runs" >&2; exit 0
fi
mkdir -p "$dir"/{containerd,cni/net.d,cni/ipam,kubelet/root,kubelet/pki,kubelet/pod-logs,kubelet/volume-plugins,images}
t0=$(date +%s.%N)

# Host settings before the kubelet changes them. A kubelet.pid means a previous
# run was never torn down: its record holds the values from before that run. While
# another real node runs, its kubelet has changed them already: its record holds the
# host's values.
if [ ! -f "$dir/kubelet.pid" ] || [ ! -s "$dir/sysctl.before" ]; then
  other=$(other_nodes | head -1)
  if [ -n "$other" ] && [ -s "$other/sysctl.before" ]; then
    cp "$other/sysctl.before" "$dir/sysctl.before"
  else
    for s in "${sysctls[@]}"; do echo "$s=$(sysctl -n "$s")"; done > "$dir/sysctl.before"
  fi
fi

# 1. the bridge (the CNI bridge plugin finds it and adds the pods' veths)
if ! ip link show "$bridge" >/dev/null 2>&1; then
  if ip -4 route show | grep -q "^$prefix.0/24"; then
    echo "real node: $prefix.0/24 is already routed here; set KONTRAKT_NODE_SUBNET" >&2; exit 1
  fi
  ip link add "$bridge" type bridge
  ip addr add "$address/24" dev "$bridge"
  ip link set "$bridge" up
fi
cat > "$dir/cni/net.d/10-$cni_net.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$cni_net",
  "plugins": [{
    "type": "bridge", "bridge": "$bridge",
    "isGateway": false, "ipMasq": false, "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": "$dir/cni/ipam",
      "ranges": [[{ "subnet": "$prefix.0/24", "rangeStart": "$prefix.10", "gateway": "$address" }]]
    }
  }]
}
JSON

# 2. containerd
cat > "$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
# Plugins that would write outside \$dir (/opt/containerd) or that nothing uses.
disabled_plugins = ["io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$dir/containerd/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/kontrakt/pause:1"
  enable_selinux = false
  # Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj (the CRI
  # asks -998 for sandboxes), so keep it at or above the runtime's own.
  restrict_oom_score_adj = true
  # Pods' network namespaces under our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
# exec: the recorded PID is containerd's own (a subshell's would leave it running).
nohup bash -c "exec containerd --config '$dir/containerd/config.toml'" > "$dir/containerd.log" 2>&1 < /dev/null &
echo $! > "$dir/containerd.pid"
for _ in $(seq 100); do ctr --address "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$sock" version >/dev/null || { tail -20 "$dir/containerd.log" >&2; exit 1; }

# 3. images: the sandbox image, then kontrakt's (make images)
SOURCE_DATE_EPOCH=0 IMAGE_REF=localhost/kontrakt/pause:1 \
  "$node_repo/images/build.sh" pause "$bin/pause" "$dir/images/pause.tar" >/dev/null
images=$(ls "$state"/images/*.tar 2>/dev/null || true)
for archive in "$dir/images/pause.tar" $images; do
  ctr --address "$sock" -n k8s.io images import "$archive" >/dev/null
done
[ -n "$images" ] || echo "real node: no image archives in $state/images (run make images)" >&2

# 4. the kubelet's identity: a client certificate for system:node:<name> from the
# cluster's CA, so the Node authorizer (not the admin's rights) decides what it reads.
k=$dir/kubelet
openssl req -new -newkey rsa:2048 -nodes -keyout "$k/pki/node.key" \
  -subj "/O=system:nodes/CN=system:node:$node_name" -out "$k/pki/node.csr" 2>/dev/null
openssl x509 -req -in "$k/pki/node.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -CAcreateserial -CAserial "$k/pki/ca.srl" -days 7 -out "$k/pki/node.crt" 2>/dev/null
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
rm -f "$k/kubeconfig"
kc() { KUBECONFIG=$k/kubeconfig kubectl config "$@" >/dev/null; }
kc set-cluster local --server="$server" --certificate-authority="$pki/ca.crt" --embed-certs
kc set-credentials node --client-certificate="$k/pki/node.crt" --client-key="$k/pki/node.key" --embed-certs
kc set-context default --cluster=local --user=node
kc use-context default

# 5. cgroups: the kubelet's root in every hierarchy (hybrid host: v1 + unified)
for h in $(cgroup_hierarchies); do mkdir -p "$h/$cgroup"; done
if [ -d /sys/fs/cgroup/cpuset/$cgroup ]; then
  cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/$cgroup/cpuset.cpus
  cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/$cgroup/cpuset.mems
fi

# 6. the kubelet
printf 'nameserver 127.0.0.1\noptions ndots:1\n' > "$k/resolv.conf"
cat > "$k/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup
cgroupsPerQOS: true
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
# The API on the bridge address only; the apiserver calls it (logs, exec) with
# the cluster's admin client certificate, checked against the cluster's CA.
address: $address
port: 10250
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
resolvConf: $k/resolv.conf
clusterDomain: cluster.local
podCIDR: $prefix.0/24
podLogsDir: $k/pod-logs
volumePluginDir: $k/volume-plugins
# No kube-proxy here and no iptables rules needed: leave the host's tables alone.
makeIPTablesUtilChains: false
# Imported images cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
protectKernelDefaults: false
maxPods: 60
registerWithTaints:
  - {key: kontrakt.dev/real-node, value: "true", effect: NoSchedule}
YAML
# How the kubelet starts, in a file of its own: a kubelet-restart test (or a
# developer) starts it again exactly so (its log appended, its PID recorded).
cat > "$dir/kubelet.start" <<SH
#!/usr/bin/env bash
nohup bash -c "cd '$k' && exec '$bin/kubelet' --config='$k/config.yaml' --kubeconfig='$k/kubeconfig' \\
  --root-dir='$k/root' --cert-dir='$k/pki' --hostname-override='$node_name' --node-ip='$address' \\
  --node-labels=kontrakt.dev/node=real --v=2" >> "$dir/kubelet.log" 2>&1 < /dev/null &
echo \$! > "$dir/kubelet.pid"
SH
chmod +x "$dir/kubelet.start"
: > "$dir/kubelet.log"
"$dir/kubelet.start"
t1=$(date +%s.%N)
kubectl wait --for=create "node/$node_name" --timeout=60s >/dev/null || { tail -30 "$dir/kubelet.log" >&2; exit 1; }
kubectl wait --for=condition=Ready "node/$node_name" --timeout=60s >/dev/null || { tail -30 "$dir/kubelet.log" >&2; exit 1; }
t2=$(date +%s.%N)

# 7. The apiserver for pods: a TCP relay on the bridge address (no kube-proxy,
# so the `kubernetes` Service is not routable; TLS passes through unchanged and
# the certificate names $address, see cluster-up.sh).
apiserver=$(echo "$server" | sed -E 's|^https://||')
nohup socat "TCP-LISTEN:$api_port,bind=$address,reuseaddr,fork" "TCP:$apiserver" > "$dir/apiserver-relay.log" 2>&1 < /dev/null &
echo $! > "$dir/apiserver-relay.pid"

# What tests and users need to put pods here (read by the e2e harness).
cat > "$dir/node.env" <<ENV
NODE_NAME=$node_name
NODE_ADDRESS=$address
NODE_BRIDGE=$bridge
NODE_DIR=$dir
CONTAINERD_ADDRESS=$sock
API_SERVER_HOST=$address
API_SERVER_PORT=$api_port
ENV
echo "real node $node_name Ready at $address (bridge $bridge): kubelet start -> Ready $(echo "$t2 - $t1" | bc) s, all $(echo "$t2 - $t0" | bc) s" >&2
