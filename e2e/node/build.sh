#!/usr/bin/env bash
# Builds what a real node needs that Debian does not ship: the kubelet (from the
# control plane's Go module, so its version is the apiserver's) and a static
# pause binary for the sandbox image. Cached outside the repository like
# controlplane/build.sh, keyed by the hash of the inputs. Prints the bin dir.
#
# containerd, runc and the CNI plugins come from Debian (apt: containerd runc
# containernetworking-plugins umoci), see e2e/node/up.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod=$(dirname "$here")/controlplane
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

cache_root=${KONTRAKT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kontrakt}
key=$(cat "$mod/go.mod" "$mod/go.sum" "$here/build.sh" "$here/pause.c" | sha256sum | cut -c1-16)
bin="$cache_root/node/$key/bin"
if [ -x "$bin/kubelet" ] && [ -x "$bin/pause" ]; then echo "$bin"; exit 0; fi

cd "$mod"
k8s=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$k8s" | cut -d. -f2)
# The same version ldflags as the control plane: the node reports the apiserver's version.
k8s_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $p.gitVersion=$k8s -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
mkdir -p "$bin.partial"
echo "building kubelet ($k8s)" >&2
nice -n 19 go build -trimpath -o "$bin.partial/kubelet" -ldflags "-s -w $k8s_ldflags" k8s.io/kubernetes/cmd/kubelet
# The sandbox ("pause") container: sleeps, reaps, exits on SIGTERM. Static, so
# its image is the binary alone (no registry to pull registry.k8s.io/pause from).
gcc -static -Os -s -o "$bin.partial/pause" "$here/pause.c"
rm -rf "$bin" && mv "$bin.partial" "$bin"
# Keep the newest three keys: a kubelet is ~80 MB.
ls -1dt "$cache_root"/node/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
echo "$bin"
