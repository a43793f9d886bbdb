#!/usr/bin/env bash
# Packs the images `make images` wrote again from the same binaries into a
# temporary dir and fails unless every archive is byte-identical (same
# manifest digest). Prints each image's reference, digest and size.
#
#   images/check-reproducible.sh RELEASE_DIR IMAGES_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
release=$1 images=$2
again=$(mktemp -d "${TMPDIR:-/tmp}/kontrakt-images-again.XXXXXX")
trap 'rm -rf "$again"' EXIT
shopt -s nullglob
archives=("$images"/kontrakt-*.tar)
[ ${#archives[@]} -gt 0 ] || { echo "no image archives in $images: run make images" >&2; exit 1; }
status=0
for archive in "${archives[@]}"; do
  name=$(basename "$archive" .tar)
  "$here/build.sh" "$name" "$release/$name" "$again/$name.tar" >/dev/null
  digest() { tar -xOf "$1" ./index.json | jq -r '.manifests[0].digest'; }
  first=$(digest "$archive") second=$(digest "$again/$name.tar")
  if cmp -s "$archive" "$again/$name.tar"; then
    echo "$name: $first, $(du -b "$archive" | cut -f1) bytes archive, built twice: identical"
  else
    echo "$name: NOT reproducible: $first vs $second" >&2
    status=1
  fi
done
exit $status
