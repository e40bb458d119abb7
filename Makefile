# Latchkey. `make help` lists the targets.

# Tools and control-plane binaries are built from the Go module proxy into a
# cache outside the clone and reused by every clone on the machine.
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/latchkey
export LATCHKEY_CACHE := $(CACHE_DIR)

CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
# helm v3.22 and kustomize v5.8.2 build with Go 1.26 (kustomize v5.8.3 needs a newer Go).
HELM_VERSION ?= v3.22.0
KUSTOMIZE_VERSION ?= v5.8.2

CONTROLLER_GEN = $(shell hack/tool.sh controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen $(CONTROLLER_GEN_VERSION))
GOLANGCI_LINT = $(shell hack/tool.sh golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint $(GOLANGCI_LINT_VERSION))
HELM = $(shell hack/tool.sh helm helm.sh/helm/v3/cmd/helm $(HELM_VERSION))
KUSTOMIZE = $(shell hack/tool.sh kustomize sigs.k8s.io/kustomize/kustomize/v5 $(KUSTOMIZE_VERSION))

# The operator image's repository, and the version stamped into every binary
# (--version) and used as the image tag: `make release VERSION=v0.2.0`.
IMAGE ?= ghcr.io/latchkey-dev/latchkey
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
VERSION_LDFLAGS = -X github.com/latchkey-dev/latchkey/internal/version.Version=$(VERSION)

# Test flags: `make test TEST_FLAGS='-run TestSchema -v'`.
TEST_FLAGS ?=
TEST_TIMEOUT ?= 30m

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate CRDs, RBAC and webhook manifests (and the chart's CRDs).
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	mkdir -p charts/latchkey/crds
	rm -f charts/latchkey/crds/*.yaml
	cp config/crd/bases/*.yaml charts/latchkey/crds/

.PHONY: generate
generate: ## Generate deepcopy code.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: ## golangci-lint.
	"$(GOLANGCI_LINT)" run ./...

.PHONY: verify
verify: ## Regenerate everything (and go mod tidy); fail if that changed any file.
	hack/verify.sh

.PHONY: control-plane
control-plane: ## Build (once) etcd, kube-apiserver and kubectl into the cache.
	@hack/control-plane.sh

.PHONY: test
test: manifests generate vet test-peers ## Unit tests and envtest suites against a real API server (and the install tests, with helm and kustomize).
	PATH="$$PATH:/usr/sbin" KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" HELM="$(HELM)" KUSTOMIZE="$(KUSTOMIZE)" go test ./... -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS)
	hack/fuzz.sh

.PHONY: test-peers
test-peers: ## Install the programs the tests talk to (NGINX, podman, runc) from Debian when missing (needs root), or say how.
	hack/test-peers.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for its execution budget (about 10s each; FUZZTIME=2m to override).
	hack/fuzz.sh

.PHONY: helm-lint
helm-lint: ## helm lint the chart (also run by make test, in internal/install).
	"$(HELM)" lint charts/latchkey
	"$(HELM)" lint charts/latchkey --set watchNamespaces='{team-a,team-b}' --set verifier.deployment.enabled=true --set certManager.enabled=true

.PHONY: tools
tools: ## Build (once) helm and kustomize into the tool cache and print their paths.
	@echo "HELM=$(HELM)"
	@echo "KUSTOMIZE=$(KUSTOMIZE)"

##@ Build

.PHONY: build
build: ## Build the manager (bin/manager), the embedded dev runner (bin/latchkey-dev) and the CLI (bin/kubectl-latchkey).
	go build -ldflags "$(VERSION_LDFLAGS)" -o bin/manager ./cmd
	go build -o bin/latchkey-dev ./cmd/latchkey-dev
	go build -ldflags "$(VERSION_LDFLAGS)" -o bin/kubectl-latchkey ./cmd/kubectl-latchkey

INSTALL_DIR ?= bin

.PHONY: install-cli
install-cli: ## Build the CLI as $(INSTALL_DIR)/kubectl-latchkey (a kubectl plugin) and link it as $(INSTALL_DIR)/api-client.
	mkdir -p $(INSTALL_DIR)
	go build -o $(INSTALL_DIR)/kubectl-latchkey ./cmd/kubectl-latchkey
	ln -sf kubectl-latchkey $(INSTALL_DIR)/api-client

.PHONY: install-manifests
install-manifests: ## Render the kustomize install (config/default) to dist/install.yaml.
	mkdir -p dist
	"$(KUSTOMIZE)" build config/default > dist/install.yaml

.PHONY: run
run: ## Run the operator against the current kubeconfig, or an embedded control plane when there is none (EMBEDDED=1 forces it).
	hack/run.sh

##@ Release

.PHONY: image
image: ## Build the operator image (linux/amd64, linux/arm64) into dist/ as an OCI archive and per-arch archives, with no Docker daemon; prints how to push it.
	VERSION="$(VERSION)" IMAGE="$(IMAGE)" hack/image.sh

.PHONY: release
release: ## Write a release to dist/ (make release VERSION=v0.2.0): images, CLI binaries, install.yaml, the chart, SHA256SUMS. See docs/release.md.
	VERSION="$(VERSION)" IMAGE="$(IMAGE)" HELM="$(HELM)" KUSTOMIZE="$(KUSTOMIZE)" hack/release.sh

##@ Benchmarks

BENCH_DURATION ?= 10s

.PHONY: console-screenshots
console-screenshots: test-peers ## Regenerate docs/console/*.png: the console's browser tests take a screenshot of each page.
	mkdir -p docs/console
	PATH="$$PATH:/usr/sbin" KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" LATCHKEY_CONSOLE_SCREENSHOTS="$(CURDIR)/docs/console" go test ./internal/console/suite -count=1 -run 'TestConsole(DecidimFlow|KallitheaFlow|RBAC|Catalog)'

.PHONY: bench
bench: ## Verifier figures on this machine: handler ns/op (HTTP verify, gRPC Check), then req/s and p50/p99 vs null HTTP (wrk, installed from Debian if missing) and gRPC handlers and TokenReview, and revocation latency.
	go test ./internal/verifier -run '^$$' -bench 'BenchmarkVerifyHandler|BenchmarkGRPCCheck' -benchmem -benchtime 2s
	hack/test-peers.sh wrk:wrk taskset:util-linux
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go run ./hack/bench -duration $(BENCH_DURATION) $(BENCH_FLAGS) 2>/dev/null

N ?= 1000
BENCH_SCALE_IDLE ?= 5m

.PHONY: bench-scale
bench-scale: ## Scale figures against a floor in the same run (make bench-scale N=5000): converge time, API requests, idle writes, heap per token, restart to first 200; written into docs/performance.md.
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go run ./hack/benchscale -n $(N) -idle $(BENCH_SCALE_IDLE) $(BENCH_SCALE_FLAGS)

##@ Faults

.PHONY: chaos
chaos: ## Every fault test, the long versions: 20 kills -9 while 500 credentials converge, a 30 s API server outage (short versions run in make test), etcd compacted under a restarted API server, leader killed.
	LATCHKEY_CHAOS=1 KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" HELM="$(HELM)" KUSTOMIZE="$(KUSTOMIZE)" go test ./internal/install -run 'TestKillNineWhileConverging|TestAPIServerOutage|TestWatchGoneAfterCompaction|TestLeaderFailover' -count=1 -v -timeout 60m
