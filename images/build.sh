#!/usr/bin/env bash
# Builds one kontrakt image as an OCI archive, without Docker (umoci, Debian):
#
#   images/build.sh NAME BINARY OUT.tar     # e.g. kontrakt-sidecar target/release/kontrakt-sidecar
#
# The root is what images/rootfs.sh puts in it (the Dockerfiles use the same script).
# Reproducible: every timestamp (files, layer, config, history) is SOURCE_DATE_EPOCH,
# default the commit time of HEAD, so the same binary and commit give the same
# digest. The archive's index names the image ghcr.io/kontrakt/NAME:VERSION (the
# chart's default), so `ctr images import`, `kind load image-archive` and
# `skopeo copy oci-archive:OUT.tar ...` need no extra name.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
name=$1 binary=$2 out=$3
version=$(awk -F'"' '/^appVersion:/ {print $2}' "$repo/charts/kontrakt/Chart.yaml")
registry=${KONTRAKT_IMAGE_REGISTRY:-ghcr.io/kontrakt}
ref=${IMAGE_REF:-$registry/$name:$version}   # IMAGE_REF: another name (the node's pause image)
version=${ref##*:}
revision=$(git -C "$repo" rev-parse HEAD)
source=$(awk -F'"' '/^repository *=/ {print $2}' "$repo/Cargo.toml")
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

work=$(mktemp -d "${TMPDIR:-/tmp}/kontrakt-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
layout=$work/oci bundle=$work/bundle
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci unpack --image "$layout:$version" "$bundle"
"$here/rootfs.sh" "$binary" "$bundle/rootfs"
# umoci writes file times into the layer as they are on disk.
find "$bundle/rootfs" -exec touch -h -d "@$epoch" {} +
umoci repack --image "$layout:$version" --history.created "$created" \
  --history.created_by "images/build.sh $name" "$bundle"
umoci config --image "$layout:$version" --created "$created" --history.created "$created" \
  --history.created_by "images/build.sh $name (config)" \
  --architecture amd64 --os linux --author kontrakt \
  --config.user 65532:65532 --config.workingdir / \
  --config.entrypoint "/usr/local/bin/$name" \
  --config.label "org.opencontainers.image.title=$name" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --config.label "org.opencontainers.image.source=$source" \
  --config.label "org.opencontainers.image.created=$created" \
  --config.label "org.opencontainers.image.licenses=Apache-2.0"
umoci gc --layout "$layout"
# The tag umoci wrote ("0.1.0") becomes the full reference importers expect.
jq -c --arg ref "$ref" '.manifests[0].annotations = {
    "org.opencontainers.image.ref.name": $ref, "io.containerd.image.name": $ref }' \
  "$layout/index.json" > "$work/index.json" && mv "$work/index.json" "$layout/index.json"
find "$layout" -exec touch -h -d "@$epoch" {} +
mkdir -p "$(dirname "$out")"
tar -C "$layout" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
  --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -cf "$out.partial" . && mv "$out.partial" "$out"
digest=$(jq -r '.manifests[0].digest' "$layout/index.json")
echo "$ref $digest $(du -b "$out" | cut -f1) bytes -> $out"
