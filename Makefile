# distrod: build, run, test. `make run` starts a local 3-node cluster; `make test` runs every test.
GO        ?= go
BIN       ?= bin/distrod
NODES     ?= 3
FUZZTIME  ?= 5s
BENCHTIME ?= 1s
# Packages of the main module (e2e is a module of its own, tested by `make e2e`).
PKGS      ?= ./...

.PHONY: all build run test vet fmt unit e2e npm-driver bench fuzz clean

all: build

build: ## bin/distrod
	$(GO) build -o $(BIN) ./cmd/distrod

run: build ## a local cluster of $(NODES) nodes on loopback (Ctrl-C stops it)
	./$(BIN) dev --nodes $(NODES)

test: vet unit e2e ## go vet, unit tests under -race, end-to-end tests with real processes

vet:
	$(GO) vet $(PKGS)
	cd e2e && $(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

e2e: npm-driver ## real distrod processes: join, kill -9, restart, the Nacos clients, and the fault suite (TestFault*; builds the binary itself)
	cd e2e && $(GO) test -race -count=1 -timeout 30m ./...

# The npm `nacos` client for TestNacosNPMClient, into e2e/npm_driver/node_modules
# (never globally). Without npm, or when the registry cannot be reached, the test skips saying so.
npm-driver:
	@if command -v npm >/dev/null; then \
	  cd e2e/npm_driver && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error || \
	    echo "warning: npm ci in e2e/npm_driver failed: TestNacosNPMClient will skip" >&2; \
	else echo "npm not found: TestNacosNPMClient will skip" >&2; fi

bench: ## short benchmarks of every package
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

fuzz: ## every Fuzz target for $(FUZZTIME) each
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

fmt: ## list files gofmt would change
	@gofmt -l . | grep . && exit 1 || true

clean:
	rm -rf bin
