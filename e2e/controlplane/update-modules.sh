#!/usr/bin/env bash
# Regenerates go.mod/go.sum for the local control plane at the versions below.
# The replace list is read from k8s.io/kubernetes's own go.mod (its ./staging
# replaces), so it follows whatever staging modules the chosen release has.
set -euo pipefail
cd "$(dirname "$0")"
K8S=${K8S:-v1.36.3}
ETCD=${ETCD:-v3.6.8}
KWOK=${KWOK:-v0.8.0}
HELM=${HELM:-v3.21.4}
staging_version="v0.${K8S#v1.}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

go mod download -json "k8s.io/kubernetes@$K8S" >/dev/null
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module kontrakt.dev/e2e/controlplane"
  echo
  echo "go 1.26.0"
  echo
  echo "tool ("
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do echo "	k8s.io/kubernetes/cmd/$t"; done
  echo "	go.etcd.io/etcd/server/v3"
  echo "	sigs.k8s.io/kwok/cmd/kwok"
  echo "	sigs.k8s.io/kwok/cmd/kwokctl"
  echo "	helm.sh/helm/v3/cmd/helm"
  echo ")"
  echo
  echo "replace ("
  grep -E '=> \./staging/src/' "$modfile" | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod
rm -f go.sum
go get "k8s.io/kubernetes@$K8S" "go.etcd.io/etcd/server/v3@$ETCD" "sigs.k8s.io/kwok@$KWOK" "helm.sh/helm/v3@$HELM"
go mod tidy
