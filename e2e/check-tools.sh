#!/usr/bin/env bash
# Checks the toolchains `make demo` and `make test` need before anything is
# built, and prints one line per problem: what is missing or too old, and how
# to install it. Versions are minimums (a newer minor version is fine); the
# numbers come from the files that pin them, so they cannot drift from here.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
problems=0
say() { echo "missing: $*" >&2; problems=$((problems + 1)); }

# version_ge HAVE WANT: dotted versions, numerically.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

rust_min=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$repo/Cargo.toml")
if ! command -v cargo >/dev/null; then
  say "Rust $rust_min or newer (cargo): install it with rustup"
else
  have=$(rustc --version 2>/dev/null | awk '{print $2}')
  version_ge "${have:-0}" "$rust_min" || say "Rust $rust_min or newer (found $have): rustup update stable"
  # rustfmt and clippy are rustup components; add them where rustup is there.
  for c in fmt clippy; do
    cargo "$c" --version >/dev/null 2>&1 && continue
    command -v rustup >/dev/null && rustup component add "$([ $c = fmt ] && echo rustfmt || echo clippy)" >/dev/null 2>&1
    cargo "$c" --version >/dev/null 2>&1 || say "cargo $c: rustup component add $([ $c = fmt ] && echo rustfmt || echo clippy)"
  done
fi

go_min=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$repo/e2e/controlplane/go.mod")
if ! command -v go >/dev/null; then
  say "Go $go_min or newer (builds the local control plane): install Go from your distribution or go.dev"
else
  # GOTOOLCHAIN=local everywhere: an older go must not try to download a newer one.
  have=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null | sed 's/^go//')
  version_ge "${have:-0}" "$go_min" || say "Go $go_min or newer (found ${have:-none}): e2e/controlplane/go.mod needs it"
fi

# anvil 1.7 declares node >= 20; npm 10 and 11 both install package-lock.json unchanged.
if ! command -v node >/dev/null; then
  say "Node.js 20 or newer with npm: install nodejs and npm"
else
  have=$(node --version | sed 's/^v//')
  version_ge "$have" 20 || say "Node.js 20 or newer (found $have): anvil's npm package needs it"
  have=$(npm --version 2>/dev/null)
  version_ge "${have:-0}" 10 || say "npm 10 or newer (found ${have:-none}): npm install -g npm@11"
fi

for t in make git gcc; do
  command -v "$t" >/dev/null || say "$t: apt-get install $([ $t = gcc ] && echo build-essential || echo $t)"
done
# mosquitto (the MQTT broker of the stream tests) is installed by `make tools` with apt.
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ] && ! command -v apt-get >/dev/null; then
  say "mosquitto (MQTT broker for the stream tests): install it with your package manager"
fi

[ "$problems" -eq 0 ] || { echo "$problems tool(s) missing or too old: install them and run make again" >&2; exit 1; }
