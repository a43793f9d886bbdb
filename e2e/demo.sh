#!/usr/bin/env bash
# `make demo`: the product's main job on the embedded default, on this machine:
# the local control plane, a local anvil chain, the kontrakt operator, the
# sample resources, and the sidecar of the Shipping service's pod, ending in
# `kubectl get` and the contract's address. Everything keeps running for you to
# explore; `make demo-down` stops it all.
#
# kwok runs no containers, so this script plays the kubelet for the one sidecar
# pod: it runs `kontrakt-sidecar serve` as a local process with the pod's
# mounted config and key (read from the API). The e2e harness does the same
# for every pod.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ns=${DEMO_NAMESPACE:-kontrakt-demo}
run=$repo/.kontrakt/demo
mkdir -p "$run"
target=${CARGO_TARGET_DIR:-$repo/target}

step() { printf '\n== %s\n' "$*"; }
started() { # name pid
  echo "$2" > "$run/$1.pid"
}
wait_port() { # port what
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done
  echo "$2 did not listen on 127.0.0.1:$1 (see $run)" >&2; return 1
}

step "local control plane"
kubeconfig=$("$here/cluster-up.sh")
export KUBECONFIG=$kubeconfig PATH=$repo/.kontrakt/bin:$repo/node_modules/.bin:$PATH

step "binaries (cargo build)"
cargo build -q -p kontrakt-operator -p kontrakt-sidecar --bins
operator=$target/debug/kontrakt-operator
sidecar=$target/debug/kontrakt-sidecar

step "anvil on 127.0.0.1:8545 (the chain the sample names)"
if (exec 3<>/dev/tcp/127.0.0.1/8545) 2>/dev/null; then
  echo "something already listens on 8545; using it"
else
  # Its own process group: npm's anvil is a node wrapper around the real binary.
  setsid anvil --host 127.0.0.1 --port 8545 --chain-id 31337 > "$run/anvil.log" 2>&1 &
  started anvil $!
  wait_port 8545 anvil
fi

step "CRDs"
kubectl apply --server-side -f "$repo/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

step "operator (watching namespace $ns)"
"$operator" --leader-election=false --watch-namespace "$ns" --listen 127.0.0.1:9464 > "$run/operator.log" 2>&1 &
started operator $!
wait_port 9464 operator

step "sample resources"
# anvil's first development account: a publicly known test key, never a real one.
# It lives only in this Secret; the service references it by name.
kubectl -n "$ns" create secret generic anvil-dev-key \
  --from-literal=privateKey=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$ns" apply --server-side -f "$repo/e2e/samples/"

step "the Shipping pod's sidecar (kwok runs no containers: run it here)"
for _ in $(seq 60); do kubectl -n "$ns" get configmap shipping-sidecar >/dev/null 2>&1 && break; sleep 1; done
pod=$run/shipping-pod
mkdir -p "$pod"
chmod 700 "$pod"
kubectl -n "$ns" get secret anvil-dev-key -o jsonpath='{.data.privateKey}' | base64 -d > "$pod/key"
chmod 400 "$pod/key"
# The pod's mounts, rewritten to local paths: the config from the ConfigMap,
# the key file from the Secret, and a loopback listen address.
kubectl -n "$ns" get configmap shipping-sidecar -o jsonpath='{.data.config\.yaml}' \
  | sed -e "s|keyFile: .*|keyFile: $pod/key|" -e "s|listen: .*|listen: 127.0.0.1:18080|" > "$pod/config.yaml"
"$sidecar" serve --config "$pod/config.yaml" > "$run/sidecar.log" 2>&1 &
started sidecar $!

step "waiting for shipping to be Ready"
kubectl -n "$ns" wait --for=condition=Ready scs/shipping --timeout=180s
kubectl -n "$ns" wait --for=condition=Ready ap/supply-chain --timeout=120s

step "kubectl get scs,dstream,ap -n $ns"
kubectl get scs,dstream,ap -n "$ns"
echo
kubectl get scs -n "$ns" -o wide
address=$(kubectl -n "$ns" get scs shipping -o jsonpath='{.status.contractAddress}')
cat <<MSG

The Shipping contract is deployed at $address on the local chain
(database $(kubectl -n "$ns" get scs shipping -o jsonpath='{.status.databaseAddress}')).
The AccessPolicy supply-chain is enrolled in the EnrollmentRegistry the Shipping
sidecar hosts (kubectl get ap shows what the chain holds). The DataStream
pump-telemetry is reconciled into a publisher Deployment; this demo runs only
the Shipping sidecar, so the stream waits for its publisher (the e2e suite runs
it: e2e/tests/data_stream.rs).

  export KUBECONFIG=$kubeconfig PATH=$repo/.kontrakt/bin:\$PATH
  kubectl -n $ns describe scs shipping
  curl -s 127.0.0.1:18080/readyz          # the sidecar; its API answers only requests
                                          # signed by an enrolled account (sidecar/src/access.rs)
  curl -s 127.0.0.1:9464/metrics | grep kontrakt_
Logs are in .kontrakt/demo/. Stop everything with: make demo-down
MSG
