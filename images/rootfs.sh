#!/usr/bin/env bash
# What goes into a kontrakt image, in one place: `images/build.sh` (make images)
# and the Dockerfiles both call it, so the two layouts cannot drift.
#
#   images/rootfs.sh BINARY ROOTFS
#
# ROOTFS gets the binary at /usr/local/bin/<name>, the shared libraries ldd names
# for it (a glibc build: no musl target here), the CA bundle (reqwest loads the
# system roots at start-up and exits without them) and a passwd/group with the
# non-root user 65532 the pods run as. No shell, no package manager.
set -euo pipefail
umask 022
binary=$1 root=$2
[ -x "$binary" ] || { echo "rootfs.sh: $binary is not an executable" >&2; exit 1; }
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "rootfs.sh: no CA bundle at $ca (apt-get install ca-certificates)" >&2; exit 1; }

mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs"
install -m 0755 "$binary" "$root/usr/local/bin/$(basename "$binary")"
# ldd prints "name => /path (addr)" and the loader as "/path (addr)"; copy each
# resolved path, keeping the path (the loader's path is baked into the binary).
# A static binary has none (ldd then fails).
libs=$(ldd "$binary" 2>/dev/null | grep -o '/[^ ]*' | sort -u || true)
for lib in $libs; do
  install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
install -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
