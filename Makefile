# kontrakt — the two commands a new user runs:
#   make demo   local control plane + anvil + operator + samples: oracle answered, stream bought, `kubectl get kontrakt`
#   make test   every test: generated files fresh, fmt, clippy, unit, contracts, images,
#               e2e (on kwok's fake nodes and on one real node: kubelet + containerd)
#
# Everything installs itself: npm packages (anvil, solc) from package-lock.json,
# the control plane built from e2e/controlplane (Go), cached outside the repo.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

REPO        := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
STATE       := $(REPO)/.kontrakt
KONTRAKT_CACHE ?= $(HOME)/.cache/kontrakt
export KONTRAKT_CACHE
export CARGO_TARGET_DIR ?= $(KONTRAKT_CACHE)/target-dev
export KUBECONFIG := $(STATE)/kubeconfig
CLUSTER     := $(or $(KONTRAKT_CLUSTER),kontrakt)
IMAGES      := $(STATE)/images
# Written by e2e/node/up.sh; the real-node tests read it.
export KONTRAKT_REAL_NODE_ENV := $(STATE)/node/$(CLUSTER)/node.env
export PATH := $(STATE)/bin:$(REPO)/node_modules/.bin:$(PATH)
CARGO       ?= cargo

.PHONY: help
help:
	@echo "make demo   - control plane, anvil, operator, samples: oracle answered, stream bought and verified"
	@echo "make test   - all tests (generated files, fmt, clippy, unit, contracts, e2e)"
	@echo "make demo REAL_NODE=1 - the same with real containers on a real node (kubelet + containerd)"
	@echo "make demo-down - stop what make demo started"
	@echo "make cluster-up / cluster-down - the local control plane alone"
	@echo "make images - OCI archives of the operator and the sidecar in .kontrakt/images (no Docker)"

## Tools ---------------------------------------------------------------------

# The toolchains themselves (Rust, Go, Node/npm, make, gcc): one line per
# problem, naming what to install, before anything is built.
.PHONY: check-tools
check-tools:
	@e2e/check-tools.sh

# `npm ci` installs exactly package-lock.json and never rewrites it. The lock
# holds every platform's optional anvil package, so npm 10 and 11 alike take it
# unchanged (`.ci/run` proves that with an empty cache). The native anvil
# binary is looked up in its platform package (sidecar/src/devchain.rs): some
# npm 10 releases link no `.bin/anvil`. No install script is needed (anvil's only
# fetches a binary its platform package already holds), so none runs.
node_modules/.package-lock.json: package-lock.json package.json
	npm ci --ignore-scripts --no-audit --no-fund
	@a=$$(ls node_modules/@foundry-rs/anvil-*/bin/anvil 2>/dev/null | head -1); \
	  "$${a:-node_modules/.bin/anvil}" --version >/dev/null || \
	  { echo "missing: a runnable anvil after npm ci (node_modules/@foundry-rs/anvil-<platform>): rm -rf node_modules and run make again" >&2; exit 1; }
	@touch $@

.PHONY: npm controlplane mosquitto node-packages tools
npm: check-tools node_modules/.package-lock.json
# The MQTT broker the stream tests start on loopback: Debian's mosquitto.
mosquitto:
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || \
	  { apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; } || \
	  { echo "missing: mosquitto (MQTT broker for the stream tests): apt-get install mosquitto" >&2; exit 1; }
# Builds (once, cached) the control plane and links its bin dir (kubectl, helm,
# kwokctl) to .kontrakt/bin, which is first on PATH for every recipe.
controlplane:
	@mkdir -p $(STATE) && ln -sfn "$$(e2e/controlplane/build.sh)" $(STATE)/bin
# The real node's runtime and the image packer, from Debian (see e2e/node/up.sh).
NODE_PACKAGES := containerd runc containernetworking-plugins umoci iptables jq bc socat
node-packages:
	@command -v umoci >/dev/null && command -v containerd >/dev/null && [ -x /usr/sbin/runc ] && \
	  [ -x /usr/lib/cni/bridge ] && command -v jq >/dev/null && command -v bc >/dev/null && command -v socat >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(NODE_PACKAGES) >/dev/null; }
tools: npm controlplane mosquitto node-packages

## Generated files (committed, checked fresh) --------------------------------

.PHONY: crds contracts check-generated
crds:
	$(CARGO) run -q -p kontrakt-operator --bin crdgen -- crds
contracts: npm
	node sidecar/contracts/build.mjs
check-generated: npm
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(CARGO) run -q -p kontrakt-operator --bin crdgen -- $$tmp; \
	if ! diff -ru crds $$tmp; then echo "crds/ is stale: run 'make crds' and commit" >&2; exit 1; fi; \
	echo "crds/ is up to date"
	node sidecar/contracts/build.mjs --check

## Lint ----------------------------------------------------------------------

.PHONY: lint chart
lint: chart
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The Helm chart lints and renders in its three shapes (all namespaces; leader
# election with two replicas; one watched namespace with a Role); bad values are refused.
chart: controlplane
	helm lint --strict charts/kontrakt
	helm template t charts/kontrakt >/dev/null
	helm template t charts/kontrakt --set replicaCount=2 | grep -q 'name: t-kontrakt-leader-election'
	helm template t charts/kontrakt --set watchNamespace=team-a | grep -q '^kind: Role$$'
	! helm template t charts/kontrakt --set replicaCount=0 >/dev/null 2>&1

# Slither over every contract (sidecar/contracts/slither/run.sh): fails on any Medium
# or High finding not fixed or suppressed in the source with its reason.
.PHONY: slither
slither: npm
	sidecar/contracts/slither/run.sh

## Local control plane -------------------------------------------------------

.PHONY: cluster-up cluster-down
cluster-up: controlplane
	e2e/cluster-up.sh >/dev/null
cluster-down:
	e2e/cluster-down.sh

## Images --------------------------------------------------------------------

.PHONY: images images-check
# OCI archives of kontrakt-operator and kontrakt-sidecar, without Docker: the
# release binaries in the root images/rootfs.sh defines (the Dockerfiles use it
# too), packed reproducibly by images/build.sh. Named like the chart's defaults
# (ghcr.io/kontrakt/<name>:<appVersion>); `ctr images import`, `kind load
# image-archive` or `skopeo copy oci-archive:...` take them as they are.
images: node-packages
	$(CARGO) build --release --locked -p kontrakt-operator --bin kontrakt-operator -p kontrakt-sidecar --bin kontrakt-sidecar
	@for n in kontrakt-operator kontrakt-sidecar; do \
	  images/build.sh $$n "$(CARGO_TARGET_DIR)/release/$$n" "$(IMAGES)/$$n.tar"; done
# The same binaries packed a second time give identical archives, or this fails.
images-check: images
	images/check-reproducible.sh "$(CARGO_TARGET_DIR)/release" "$(IMAGES)"

## Tests ---------------------------------------------------------------------

.PHONY: unit gas tests test
# Pure tests only (no cluster, no chain).
unit:
	$(CARGO) test --workspace --lib --bins

# The gas table (pair vs monolithic) on a real anvil. Gas does not depend on
# the build profile, so the targets are enforced here too (`--bench`).
gas: npm
	$(CARGO) test -p kontrakt-sidecar --bench gas -- --bench

# Every test: unit, contracts on anvil, and the tests against the real
# apiserver (operator, e2e), with one real node (kubelet + containerd, the
# images imported). The cluster is torn down whatever the outcome, and the run
# fails if the real node left anything on the host (e2e/node/check-clean.sh).
tests: tools images
	@export KONTRAKT_REAL_NODE=1; trap 'e2e/cluster-down.sh; exit 130' INT TERM; rc=0; \
	{ e2e/cluster-up.sh >/dev/null && \
	  kubectl apply --server-side -f crds/ >/dev/null && \
	  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null && \
	  $(CARGO) test --workspace; } || rc=$$?; \
	e2e/cluster-down.sh; e2e/node/check-clean.sh || rc=1; exit $$rc

test: tools check-generated lint slither images-check tests gas
	@echo "make test: all checks passed"

## Benchmarks ----------------------------------------------------------------

# The scale benchmark (operator/benches/scale.rs): OBJECTS SmartContractServices
# at once through the release operator vs. the plain-client floor, on its own
# cluster "bench" (own state dir, so it never touches the default cluster's
# kubeconfig). Torn down whatever the outcome; fails when a target is missed.
OBJECTS ?= 100
.PHONY: bench-scale
bench-scale: tools
	@export KONTRAKT_CLUSTER=bench KONTRAKT_STATE=$(STATE)/bench; \
	e2e/cluster-up.sh >/dev/null; trap 'e2e/cluster-down.sh' EXIT; \
	export KUBECONFIG=$(STATE)/bench/kubeconfig; \
	kubectl apply --server-side -f crds/ >/dev/null; \
	kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null; \
	$(CARGO) bench -p kontrakt-operator --bench scale -- --objects $(OBJECTS)

# The oracle benchmark (sidecar/benches/oracle.rs) on its own anvil with a local HTTP
# endpoint: request -> fulfil latency at ORACLE_RATE requests/s for ORACLE_SECONDS, 1,000 concurrent
# requests (no nonce gaps) against the one-key transaction floor, and the fulfil gas.
# Fails when a target is missed.
ORACLE_RATE ?= 50
ORACLE_SECONDS ?= 60
.PHONY: bench-oracle
bench-oracle: npm
	$(CARGO) bench -p kontrakt-sidecar --bench oracle -- --rate $(ORACLE_RATE) --seconds $(ORACLE_SECONDS)

# The enrollment benchmark (sidecar/benches/enrollment.rs) on its own anvil: 1,000
# participants through the reconciler (batched) vs. one transaction each, and the gas of
# the enrollment check inside a call. Fails when the cold-check target is missed.
.PHONY: bench-enrollment
bench-enrollment: npm
	$(CARGO) bench -p kontrakt-sidecar --bench enrollment

# The stream benchmark (sidecar/benches/stream.rs) on its own anvil: STREAM_MESSAGES
# 200-byte messages ingested, hashed, batched (1,000 per batch) and anchored, against the
# raw-keccak floor of the same bytes, and the anchoring gas per message. Fails when a
# target is missed.
STREAM_MESSAGES ?= 100000
.PHONY: bench-stream
bench-stream: npm
	$(CARGO) bench -p kontrakt-sidecar --bench stream -- --messages $(STREAM_MESSAGES)

## Demo ----------------------------------------------------------------------

.PHONY: demo demo-down
# REAL_NODE=1: the operator and every pod run as real containers of kontrakt's
# images (built first) on a real node (kubelet + containerd) beside kwok's.
demo: tools $(if $(filter 1,$(REAL_NODE)),images)
	KONTRAKT_REAL_NODE=$(if $(filter 1,$(REAL_NODE)),1,0) e2e/demo.sh
demo-down:
	e2e/demo-down.sh
