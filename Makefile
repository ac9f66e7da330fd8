# Meridian's build. Everything the tests and the demo need is built here from Go modules, into bin/.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

ROOT := $(CURDIR)
BIN := $(ROOT)/bin
GO ?= go
export GO
# Without -trimpath, Go keys the build cache of Meridian's own packages on the clone's folder, so
# a fresh clone compiles, vets and links everything again although the cache is warm; with it,
# every clone and worktree shares the cache (test/testbed.RepoRoot then finds the repository from
# the working directory). The subprocesses the tests start (go build, go run) inherit it. GOFLAGS
# in the environment hides `go env -w GOFLAGS=...`, so it starts from what go env says.
export GOFLAGS := $(strip $(filter-out -trimpath,$(shell $(GO) env GOFLAGS)) -trimpath)
# Test binaries are linked for each run and thrown away: without DWARF (-w) a link takes about a
# quarter less CPU; stack traces and panics are unchanged (they read the pcln table, not DWARF).
GOTEST := $(GO) test -ldflags=-w

KUBE_VERSION := v1.36.3
KUBE_MINOR := 36
# Kubernetes' binaries report the version they were built from only when told by ldflags, as
# Kubernetes' own build does.
KUBE_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=$(KUBE_MINOR) \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/client-go/pkg/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 \
	-X k8s.io/client-go/pkg/version.gitMinor=$(KUBE_MINOR) \
	-X k8s.io/client-go/pkg/version.gitTreeState=clean

CONTROLLER_GEN := $(BIN)/controller-gen
KUBE_APISERVER := $(BIN)/kube-apiserver
ETCD := $(BIN)/etcd
KUBECTL := $(BIN)/kubectl
KUBE_CONTROLLER_MANAGER := $(BIN)/kube-controller-manager
KUBE_SCHEDULER := $(BIN)/kube-scheduler
KWOK := $(BIN)/kwok
MANAGER := $(BIN)/manager
NODE_AGENT := $(BIN)/node-agent
KUBECTL_MERIDIAN := $(BIN)/kubectl-meridian
AGENT_VERSION ?= dev

# Stamps record which tools-module inputs a binary was built from, so a changed go.mod rebuilds it.
KUBE_INPUTS := hack/kube/go.mod hack/kube/go.sum
ETCD_INPUTS := hack/etcd/go.mod hack/etcd/go.sum hack/etcd/main.go
GEN_INPUTS := hack/controller-gen/go.mod hack/controller-gen/go.sum
KWOK_INPUTS := hack/kwok/go.mod hack/kwok/go.sum

IMG ?= meridian-manager:dev
AGENT_IMG ?= meridian-node-agent:$(AGENT_VERSION)

.PHONY: all
all: build

##@ Tools (built from Go modules into bin/; hack/tool.sh keeps each binary in a cache outside the clone, keyed by what it is built from)

$(KUBE_APISERVER): $(KUBE_INPUTS)
	hack/tool.sh $@ hack/kube -trimpath -ldflags '$(KUBE_LDFLAGS)' k8s.io/kubernetes/cmd/kube-apiserver

$(KUBECTL): $(KUBE_INPUTS)
	hack/tool.sh $@ hack/kube -trimpath -ldflags '$(KUBE_LDFLAGS)' k8s.io/kubernetes/cmd/kubectl

$(KUBE_CONTROLLER_MANAGER): $(KUBE_INPUTS)
	hack/tool.sh $@ hack/kube -trimpath -ldflags '$(KUBE_LDFLAGS)' k8s.io/kubernetes/cmd/kube-controller-manager

$(KUBE_SCHEDULER): $(KUBE_INPUTS)
	hack/tool.sh $@ hack/kube -trimpath -ldflags '$(KUBE_LDFLAGS)' k8s.io/kubernetes/cmd/kube-scheduler

# kwok simulates kubelets for live members; its own module keeps its dependencies out of Meridian's.
$(KWOK): $(KWOK_INPUTS)
	hack/tool.sh $@ hack/kwok -trimpath -ldflags '-s -w' sigs.k8s.io/kwok/cmd/kwok

$(ETCD): $(ETCD_INPUTS)
	hack/tool.sh $@ hack/etcd -trimpath -ldflags '-s -w' .

$(CONTROLLER_GEN): $(GEN_INPUTS)
	hack/tool.sh $@ hack/controller-gen -trimpath sigs.k8s.io/controller-tools/cmd/controller-gen

.PHONY: test-tools
test-tools: $(KUBE_APISERVER) $(ETCD) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KWOK) ## Build the control plane binaries the test bed runs (live members need the last three).

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./apis/...

.PHONY: manifests
# Hub CRDs go to config/crd/bases (installed on the hub); the member.meridian.io kinds go to
# config/crd/member: Meridian puts them into member clusters, never onto the hub.
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC and webhook configuration.
	$(CONTROLLER_GEN) rbac:roleName=meridian-manager-role webhook paths=./... \
		output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook
	$(CONTROLLER_GEN) crd paths="./apis/fleet/...;./apis/networking/...;./apis/policy/..." \
		output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) crd paths=./apis/member/... output:crd:artifacts:config=config/crd/member

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail when generating changes the generated files (they were stale).
	@before="$$(find apis config -type f -print0 | sort -z | xargs -0 sha256sum)"; \
		$(MAKE) --no-print-directory generate manifests >/dev/null; \
		after="$$(find apis config -type f -print0 | sort -z | xargs -0 sha256sum)"; \
		if [ "$$before" != "$$after" ]; then \
			echo "Generated files were out of date and are now regenerated; review and commit them:"; \
			diff <(echo "$$before") <(echo "$$after") || true; exit 1; fi

.PHONY: fmt
fmt:
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet and check formatting.
	@unformatted="$$(gofmt -l apis cmd controllers internal test)"; \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

##@ Test

.PHONY: test
test: verify-generated vet test-tools $(KUBECTL) ## Everything: generated files, vet, unit and integration tests.
	$(GOTEST) -count=1 $$($(GO) list ./... | grep -v /test/)
	$(MAKE) --no-print-directory test-conformance
	$(MAKE) --no-print-directory test-integration

# The integration packages run two at a time (`go test -p 2`), in this order, longest first, so
# that the two lanes end together; the packages not named here follow. Most of a suite's time is
# waiting (for control planes, for bounds and for windows in which nothing may happen), and the
# suites' timing bounds hold with another suite beside them on 2 cores (docs/testing.md). The beds
# share no ports (envtest reserves them across processes), folders (each a new temporary folder)
# or nftables tables (named by the apiserver's port). The dataplane end-to-end test runs alone
# afterwards: a probe that gets no answer within 1.5 s counts as dropped, a bound on the
# scheduling of its own servers that a second suite on the same cores could break.
INTEGRATION_FIRST := ./test/integration/globalns ./test/integration/work ./test/integration/gitops \
	./test/integration/agent ./test/integration/fleet ./test/integration/install

.PHONY: test-integration
test-integration: test-tools $(KUBECTL) ## Integration packages under test/, two at a time; then the dataplane end-to-end test alone.
	$(GOTEST) -count=1 -p 2 -timeout 20m $(INTEGRATION_FIRST) $$($(GO) list ./test/... | grep -v /test/e2e/)
	$(GOTEST) -count=1 -p 1 -timeout 20m ./test/e2e/...

# Its own module: Flux's runtime package needs newer Kubernetes libraries than Meridian builds with.
.PHONY: test-conformance
test-conformance: ## Argo CD health scripts (gopher-lua, no string/math), kstatus and Flux checks over config/argocd's testdata.
	cd test/conformance && $(GO) vet ./... && $(GOTEST) -count=1 ./...

.PHONY: bench-live
bench-live: test-tools ## Measure live members: start time, memory, and one member with 1,000 nodes and 10,000 pods.
	$(GO) run ./test/bench/live $(BENCH_LIVE_ARGS)

.PHONY: bench-mcs
bench-mcs: build test-tools ## Service discovery over 3 live members: endpoint propagation p50/p99, writes per change, memory (BENCH_SERVICES, BENCH_CHANGES, BENCH_QUICK=1, BENCH_MANAGER=another build to compare); writes bench/out/mcs.json.
	$(GO) run ./test/bench/mcs

.PHONY: bench-policy
bench-policy: build test-tools ## GlobalNetworkPolicy over 3 live members (Antrea, ClusterNetworkPolicy, Meridian forms): policy change and pod churn to members p50/p99, writes, memory (BENCH_PODS, BENCH_POLICIES, BENCH_CHANGES, BENCH_CHURN, BENCH_QUICK=1); writes bench/out/policy.json.
	$(GO) run ./test/bench/policy

.PHONY: bench-agents
bench-agents: build test-tools ## Node agents over 3 live members × 200 simulated nodes (one agent per node in one process, heartbeat 10 s): hub and member writes per minute, memory (BENCH_NODES, BENCH_STEADY, BENCH_QUICK=1); writes bench/out/agents.json.
	$(GO) run ./test/bench/agents

.PHONY: bench
bench: build $(KUBE_APISERVER) $(ETCD) ## Fan-out benchmark of the work engine (BENCH_N, BENCH_M, BENCH_PER_WORK, BENCH_RUNS, BENCH_CPUS=split|shared, BENCH_QUICK=1); writes bench/out/fanout.json.
	$(GO) run ./test/bench/fanout

.PHONY: bench-dataplane
bench-dataplane: ## nftables dataplane, as root: set-update transactions/s, programming 10,000 rules, pod-to-pod TCP with 1,000 rules vs none (BENCH_RULES, BENCH_PATH_RULES, BENCH_SECONDS, BENCH_ROUNDS); writes bench/out/dataplane.json.
	$(GO) run ./test/bench/dataplane

.PHONY: test-unit
test-unit: ## Unit tests only (no control planes).
	$(GOTEST) -count=1 ./apis/... ./internal/... ./controllers/...

##@ Build and run

.PHONY: build
build: ## Build the manager, the node agent and the kubectl plugin (bin/kubectl-meridian: put bin/ on PATH for `kubectl meridian`).
	$(GO) build -trimpath -o $(MANAGER) ./cmd/manager
	$(GO) build -trimpath -o $(KUBECTL_MERIDIAN) ./cmd/kubectl-meridian
	$(GO) build -trimpath -ldflags '-X main.version=$(AGENT_VERSION)' -o $(NODE_AGENT) ./cmd/node-agent

.PHONY: node-agent
node-agent: ## Build the node agent only (AGENT_VERSION sets the version it reports).
	$(GO) build -trimpath -ldflags '-X main.version=$(AGENT_VERSION)' -o $(NODE_AGENT) ./cmd/node-agent

.PHONY: demo
demo: build test-tools $(KUBECTL) ## Start a hub and two members on loopback, run the manager, apply the samples.
	MERIDIAN_BIN_DIR=$(BIN) $(GO) run ./test/demo

.PHONY: build-installer
build-installer: ## Write dist/install.yaml (CRDs, RBAC, manager, webhook; the manager issues its certificate) from config/default, and dist/install-cert-manager.yaml (cert-manager issues it) from config/default-cert-manager, with kustomize as a library.
	cd hack/installer && $(GO) run . -kustomization $(ROOT)/config/default -o $(ROOT)/dist/install.yaml
	cd hack/installer && $(GO) run . -kustomization $(ROOT)/config/default-cert-manager -o $(ROOT)/dist/install-cert-manager.yaml

.PHONY: docker-build
docker-build: ## Build the manager and node agent images (needs a Docker engine).
	docker build -t $(IMG) .
	docker build --target node-agent --build-arg AGENT_VERSION=$(AGENT_VERSION) -t $(AGENT_IMG) .

.PHONY: clean
clean: ## Remove what the build, the demo and the installer wrote here (bin/, dist/, demo-out/, bench/out/).
	rm -rf $(BIN) dist demo-out bench/out

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
