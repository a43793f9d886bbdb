#!/usr/bin/env bash
# Static analysis of every contract with Slither (PyPI, pinned in requirements.txt, in a
# venv cached outside the repo), compiled by the repo's solcjs with build.mjs's settings.
# Fails on any Medium or High finding: fix it, or suppress it where it stands with
# `// slither-disable-next-line <detector>` and a one-line reason.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
contracts=$(dirname "$here")
cache=${KONTRAKT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kontrakt}
venv=$cache/slither/$(sha256sum "$here/requirements.txt" | cut -c1-16)
# A venv cannot be moved (its scripts name their path): built in place, marked when whole.
if [ ! -f "$venv/complete" ]; then
  command -v python3 >/dev/null || { echo "missing: python3 (for Slither): apt-get install python3 python3-venv" >&2; exit 1; }
  rm -rf "$venv"
  python3 -m venv "$venv" || { echo "missing: python3-venv (for Slither): apt-get install python3-venv" >&2; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  touch "$venv/complete"
fi

# One compilation unit holding every source, in a folder of its own (crytic-compile
# compiles a folder's files with one standard-JSON call; the sources live in several).
cd "$contracts"
unit=$(mktemp -d -p . .slither-XXXXXX)
trap 'rm -rf "$unit"' EXIT
{
  echo "// SPDX-License-Identifier: Apache-2.0"
  echo "pragma solidity ^0.8.28;"
  find src -name '*.sol' | sort | sed 's|.*|import "../&";|'
} > "$unit/All.sol"
"$venv/bin/slither" "$unit" --solc "$here/solc" --solc-standard-json \
  --exclude-informational --exclude-low --exclude-optimization --fail-medium
