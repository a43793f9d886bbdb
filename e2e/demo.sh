#!/usr/bin/env bash
# `make demo`: the local control plane, the kontrakt CRDs and the sample
# resources, ending in `kubectl get`. The cluster stays up for you to explore;
# `make cluster-down` removes it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ns=${DEMO_NAMESPACE:-kontrakt-demo}

kubeconfig=$("$here/cluster-up.sh")
export KUBECONFIG=$kubeconfig PATH=$repo/.kontrakt/bin:$PATH

echo "== CRDs"
kubectl apply --server-side -f "$repo/crds/"
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

echo "== namespace $ns and the samples"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# anvil's first development account: a publicly known test key, never a real one.
# It lives only in this Secret; the service references it by name.
kubectl -n "$ns" create secret generic anvil-dev-key \
  --from-literal=privateKey=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$ns" apply --server-side -f "$repo/e2e/samples/"

echo
echo "== kubectl get scs,dstream,ap -n $ns"
kubectl get scs,dstream,ap -n "$ns"
cat <<MSG

The resources are stored and validated by a real kube-apiserver; try
  export KUBECONFIG=$kubeconfig PATH=$repo/.kontrakt/bin:\$PATH
  kubectl explain scs.spec.contract
  kubectl -n $ns patch scs shipping --type merge -p '{"spec":{"chain":{"chainId":1}}}'   # refused: immutable
Tear down with: make cluster-down
MSG
