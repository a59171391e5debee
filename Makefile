# Drover: `make run` runs it, `make test` tests it. Both fetch what they need
# first (`make deps`): Go modules through the Go module proxy, and the native
# libraries (ONNX Runtime, the embedded ClickHouse engine) through npm into
# $(DROVER_CACHE) (default ~/.cache/drover).

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/drover-ml/drover/shared/buildinfo.Version=$(VERSION)
BINARIES := drover-agent drover-collector droverctl
STATICCHECK_VERSION := v0.8.2

export CGO_ENABLED := 1

.PHONY: all deps build test run bench lint clean

all: build

## deps: download Go modules and fetch/verify the native libraries
deps:
	@command -v $(GO) >/dev/null || { echo "Go is required: install Go 1.26 (https://go.dev/doc/install)"; exit 1; }
	@command -v gcc >/dev/null || { echo "gcc is required (cgo links ONNX Runtime): apt-get install gcc"; exit 1; }
	$(GO) mod download
	$(GO) run ./shared/cmd/drover-deps

## build: bin/drover-agent, bin/drover-collector, bin/droverctl
build:
	@mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/drover-agent ./agent/cmd/drover-agent
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/drover-collector ./collector/cmd/drover-collector
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/droverctl ./collector/cmd/droverctl

## test: deps, and every test (with the race detector) against the real
## ONNX Runtime and the real ClickHouse engine, each package vetted first
## with all of go vet's checks (-vet=all: on the race build, so a clean
## machine compiles the dependencies once, not twice); fuzz seed corpora
## run too
test: deps
	$(GO) test -race -vet=all -timeout 12m ./...

## run: the closed loop on this machine (deploy/local/run.sh, docs/demo.md):
## the embedded ClickHouse on 9000/8123, a collector with the built-in
## optimizer, two agents, the model `demo`, and a workload that injects
## drift and prints each stage; `make run DEMO=0` starts the stack alone
DEMO ?= 1
MAKE_STARTED := $(shell date +%s.%N)
run: deps build
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/drover-demo ./deploy/local/demo/cmd/drover-demo
	DEMO=$(DEMO) DROVER_STARTED=$(MAKE_STARTED) ./deploy/local/run.sh

## bench: benchmarks that compare Drover with its baseline in the same run
bench: deps
	$(GO) run ./bench/overhead
	$(GO) run ./bench/swap
	$(GO) run ./bench/monitoring
	$(GO) run ./bench/ingest
	$(GO) run ./bench/fleet
	$(GO) run ./bench/optimize
	$(GO) test -run '^$$' -bench . ./shared/oip/ ./collector/ring/

## lint: go vet and staticcheck
lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -rf bin var var.prev
