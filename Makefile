# Latchkey. `make help` lists the targets.

# Tools and control-plane binaries are built from the Go module proxy into a
# cache outside the clone and reused by every clone on the machine.
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/latchkey
export LATCHKEY_CACHE := $(CACHE_DIR)

CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0

CONTROLLER_GEN = $(shell hack/tool.sh controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen $(CONTROLLER_GEN_VERSION))
GOLANGCI_LINT = $(shell hack/tool.sh golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint $(GOLANGCI_LINT_VERSION))

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
test: manifests generate vet ## Unit tests and envtest suites against a real API server.
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go test ./... -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS)
	hack/fuzz.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 10s) each.
	hack/fuzz.sh

##@ Build

.PHONY: build
build: ## Build the manager (bin/manager) and the embedded dev runner (bin/latchkey-dev).
	go build -o bin/manager ./cmd
	go build -o bin/latchkey-dev ./cmd/latchkey-dev

.PHONY: run
run: ## Run the operator against the current kubeconfig, or an embedded control plane when there is none (EMBEDDED=1 forces it).
	hack/run.sh
