#!/usr/bin/env bash
# Brings up a real local Kubernetes control plane with kwokctl: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok fake nodes,
# all as local processes bound to 127.0.0.1 (no Docker), from binaries built by
# controlplane/build.sh. Writes a kubeconfig and prints how to use it.
#
#   e2e/cluster-up.sh            # cluster "kontrakt", 3 fake nodes
#   KONTRAKT_CLUSTER=x NODES=5 e2e/cluster-up.sh
#   KONTRAKT_REAL_NODE=1 e2e/cluster-up.sh   # plus one real node (e2e/node/up.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
name=${KONTRAKT_CLUSTER:-kontrakt}
nodes=${NODES:-3}
state=${KONTRAKT_STATE:-$repo/.kontrakt}
kubeconfig=$state/kubeconfig
bin=$("$here/controlplane/build.sh")
cache_root=${KONTRAKT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kontrakt}
export KWOK_WORKDIR=$cache_root/kwok
pki=$KWOK_WORKDIR/clusters/$name/pki

# One stable place for kubectl/helm so users and tests need not know the cache key.
mkdir -p "$state"
ln -sfn "$bin" "$state/bin"
export PATH=$state/bin:$PATH

# With a real node, pods reach the apiserver through a relay on the node's
# bridge address (e2e/node/up.sh): its certificate must name that address.
sans=""
if [ "${KONTRAKT_REAL_NODE:-0}" = 1 ]; then
  sans="  kubeApiserverCertSANs: [$(source "$here/node/common.sh" && echo "$address")]"
fi
k8s_version=$("$bin/kube-apiserver" --version | awk '{print $2}')
etcd_version=$("$bin/etcd" --version | awk '/etcd Version/ {print $3}')
config=$state/kwokctl.yaml
cat > "$config" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: $k8s_version
  etcdVersion: v$etcd_version
  kubeApiserverBinary: $bin/kube-apiserver
  kubeControllerManagerBinary: $bin/kube-controller-manager
  kubeSchedulerBinary: $bin/kube-scheduler
  kubectlBinary: $bin/kubectl
  etcdBinary: $bin/etcd
  kwokControllerBinary: $bin/kwok
  kubeAuthorization: true
  kubeAdmission: true
  quietPull: true
$sans
# One instance of each: leader election only lets a restarted apiserver kill
# them (a lease they cannot renew makes them exit, and nothing restarts them).
componentsPatches:
  # For a real node (e2e/node/up.sh): the apiserver reaches a kubelet by its
  # InternalIP (its Hostname, the node name, does not resolve) with the admin
  # client certificate; a namespace can send its pods there (node-selector and
  # default-tolerations annotations).
  - name: kube-apiserver
    extraArgs:
      - key: kubelet-preferred-address-types
        value: InternalIP,Hostname
      - key: kubelet-client-certificate
        value: $pki/admin.crt
      - key: kubelet-client-key
        value: $pki/admin.key
      - key: enable-admission-plugins
        value: PodNodeSelector,PodTolerationRestriction
  # kwokctl's binary runtime passes --manage-all-nodes=true, which would take a
  # real kubelet's node and pods over too; keep kwok to its own fake nodes.
  - name: kwok-controller
    extraArgs:
      - key: manage-all-nodes
        value: "false"
      - key: manage-nodes-with-annotation-selector
        value: kwok.x-k8s.io/node=fake
  - name: kube-controller-manager
    extraArgs:
      - key: leader-elect
        value: "false"
  - name: kube-scheduler
    extraArgs:
      - key: leader-elect
        value: "false"
YAML

if kwokctl get clusters 2>/dev/null | grep -qx "$name"; then
  echo "cluster $name exists; starting it" >&2
  kwokctl start cluster --name "$name" >&2
else
  kwokctl create cluster --name "$name" --config "$config" --kubeconfig "$kubeconfig" --wait 120s >&2
fi
kwokctl get kubeconfig --name "$name" > "$kubeconfig"
export KUBECONFIG=$kubeconfig

have=$(kubectl get nodes --no-headers 2>/dev/null | wc -l)
if [ "$have" -lt "$nodes" ]; then
  kwokctl scale node --name "$name" --replicas "$nodes" >&2
fi
for _ in $(seq 60); do
  kubectl get --raw /readyz >/dev/null 2>&1 && break
  sleep 1
done
kubectl get --raw /readyz >/dev/null

if [ "${KONTRAKT_REAL_NODE:-0}" = 1 ]; then
  "$here/node/up.sh"
fi

cat >&2 <<MSG

Cluster "$name" is up ($k8s_version, $nodes fake nodes, 127.0.0.1 only).
  export KUBECONFIG=$kubeconfig PATH=$state/bin:\$PATH
  kubectl get nodes
Tear it down with e2e/cluster-down.sh.
MSG
echo "$kubeconfig"
