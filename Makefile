# rpcproxy: build, test, demo and bench. Everything a target needs it installs
# itself (npm packages into e2e/node/node_modules, Chromium with apt for the
# status page test, HAProxy with apt for the bench).

GO      ?= go
BIN     := bin
export GOFLAGS := -buildvcs=false

# The version `rpcproxy version` prints and agents gossip. GOFLAGS above turns
# off Go's own VCS stamping, so the commit travels in -ldflags too. Outside a
# git checkout: "dev" and no commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build rpcproxy test unit fuzz e2e-install e2e demo bench bench-micro clean

all: build

build: rpcproxy
	$(GO) build -o $(BIN)/modelstub ./cmd/modelstub
	@if [ -d cmd/fakecli ] && ls cmd/fakecli/*.go >/dev/null 2>&1; then $(GO) build -o $(BIN)/fakecli ./cmd/fakecli; fi

## rpcproxy: the binary alone, stamped with its version and commit.
rpcproxy:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/rpcproxy ./cmd/rpcproxy

## test: every test: unit and integration (fake CLI servers), then end-to-end
## with the real Copilot CLI and the official Node and Go SDKs.
test: unit e2e

## unit: installs headless Chromium (apt) for the status page's browser test.
unit:
	bash scripts/install-prometheus.sh
	bash scripts/install-chromium.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...
	# The proxy's suite again with every client's upstreams its own
	# (upstream.connections_per_backend = 0; the run above shares 4).
	RPCPROXY_TEST_SHARED=0 $(GO) test -race -count=1 -timeout 10m ./internal/proxy/
	# Allocation checks again without -race (the detector allocates itself).
	$(GO) test -count=1 -run 'AllocatesNothing|Allocs' ./...

## fuzz: every fuzz target in the module (go test -list 'Fuzz.*' in each
## package), FUZZTIME (30s) each. Failing inputs land in testdata/fuzz.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz: $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

e2e-install:
	bash e2e/install.sh

e2e: e2e-install
	cd e2e && E2E_REQUIRED=1 $(GO) test -p 1 -count=1 -timeout 30m ./...

## demo: a local pool of 3 headless CLI servers behind rpcproxy, a local model
## stub, and a few SDK sessions driven through it. Uses `copilot` from PATH when
## it is the pinned version; installs the pinned CLI from npm otherwise, and the
## Node SDK either way (scripts/demo-cli.sh, e2e/install.sh).
demo: build
	bash scripts/demo.sh

## bench: the load bench (direct vs rpcproxy vs HAProxy) and the micro-benchmarks.
bench: build
	bash bench/run.sh

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./bench/

clean:
	rm -rf $(BIN)
