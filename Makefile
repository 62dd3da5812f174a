# rpcproxy: build, test, demo and bench. Everything a target needs it installs
# itself (npm packages into e2e/node/node_modules, Chromium with apt for the
# status page test, HAProxy with apt for the bench).

GO      ?= go
BIN     := bin
export GOFLAGS := -buildvcs=false

.PHONY: all build test unit e2e-install e2e demo bench bench-micro clean

all: build

build:
	$(GO) build -o $(BIN)/rpcproxy ./cmd/rpcproxy
	$(GO) build -o $(BIN)/modelstub ./cmd/modelstub
	@if [ -d cmd/fakecli ] && ls cmd/fakecli/*.go >/dev/null 2>&1; then $(GO) build -o $(BIN)/fakecli ./cmd/fakecli; fi

## test: every test: unit and integration (fake CLI servers), then end-to-end
## with the real Copilot CLI and the official Node and Go SDKs.
test: unit e2e

## unit: installs headless Chromium (apt) for the status page's browser test.
unit:
	bash scripts/install-chromium.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...

e2e-install:
	bash e2e/install.sh

e2e: e2e-install
	cd e2e && E2E_REQUIRED=1 $(GO) test -p 1 -count=1 -timeout 30m ./...

## demo: a local pool of 3 headless CLI servers behind rpcproxy, a local model
## stub, and a few SDK sessions driven through it.
demo: e2e-install build
	bash scripts/demo.sh

## bench: the load bench (direct vs rpcproxy vs HAProxy) and the micro-benchmarks.
bench: build
	bash bench/run.sh

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./bench/

clean:
	rm -rf $(BIN)
