#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, kwokctl, helm) from this Go module.
# Binaries are cached outside the repository, keyed by the go.sum hash, so a
# rebuild happens only when the pinned versions change. Prints the bin dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

cache_root=${KONTRAKT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kontrakt}
key=$(cat go.mod go.sum build.sh | sha256sum | cut -c1-16)
bin="$cache_root/controlplane/$key/bin"
tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm)

complete() { for t in "${tools[@]}"; do [ -x "$bin/$t" ] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi

ver() { go list -m -f '{{.Version}}' "$1"; }
k8s=$(ver k8s.io/kubernetes)        # v1.36.3
kwok=$(ver sigs.k8s.io/kwok)
helm=$(ver helm.sh/helm/v3)
minor=$(echo "$k8s" | cut -d. -f2)
# Without these the k8s binaries report v0.0.0-master, and kwokctl chooses
# flags from `kube-apiserver --version`.
k8s_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $p.gitVersion=$k8s -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

mkdir -p "$bin.partial"
build() { # name package extra-ldflags
  echo "building $1 ($2)" >&2
  go build -trimpath -o "$bin.partial/$1" -ldflags "-s -w $3" "$2"
}
build kube-apiserver          k8s.io/kubernetes/cmd/kube-apiserver          "$k8s_ldflags"
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build kube-scheduler          k8s.io/kubernetes/cmd/kube-scheduler          "$k8s_ldflags"
build kubectl                 k8s.io/kubernetes/cmd/kubectl                 "$k8s_ldflags"
build etcd                    go.etcd.io/etcd/server/v3                     ""
kw="-X sigs.k8s.io/kwok/pkg/consts.Version=${kwok#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${k8s#v}"
build kwok                    sigs.k8s.io/kwok/cmd/kwok                     "$kw"
build kwokctl                 sigs.k8s.io/kwok/cmd/kwokctl                  "$kw"
hv="-X helm.sh/helm/v3/internal/version.version=$helm -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
hv+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
hv+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
build helm                    helm.sh/helm/v3/cmd/helm                      "$hv"
rm -rf "$bin" && mv "$bin.partial" "$bin"
echo "$bin"
