# The project's build. `make test` is what CI runs (.ci/run).
SHELL       := /bin/bash
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 20s
BENCHTIME   ?= 1s
UNPACKROUNDS ?= 5
PKGS        := ./...

# Debian packages the tests and benchmarks need on a fresh machine.
DEB_TEST    := busybox-static skopeo docker-registry podman \
               openssh-client gcc make libc6-dev python3-pip python3-venv nodejs
DEB_BENCH   := bubblewrap buildah

.PHONY: all build test test-short lint bench fuzz deps deps-bench clean

all: build

build:
	$(GO) build $(PKGS)

## deps: install missing Debian packages (as root), or say what is missing.
deps:
	@./scripts/ensure-debs.sh $(DEB_TEST)
	@./scripts/ensure-vm-deps.sh

deps-bench:
	@./scripts/ensure-debs.sh $(DEB_TEST) $(DEB_BENCH)
	@./scripts/ensure-vm-deps.sh

# Packages whose tests also run as an unprivileged user (rootless mode).
ROOTLESS_PKGS := . ./internal/hv/ns

## test: everything CI checks: formatting, vet, staticcheck, the race-enabled
## suite, the public suite again through the helper (CC_USE_HELPER=1), and
## the sandbox tests again as an unprivileged user.
test: deps lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	CC_USE_HELPER=1 $(GO) test -race -count=1 -timeout 20m .
	./scripts/test-rootless.sh $(ROOTLESS_PKGS)

## test-short: the suite without lint and race detector, for quick iterations.
test-short:
	$(GO) test -count=1 $(PKGS)

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$fmt" ]; then echo "gofmt would change:"; echo "$$fmt"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

## bench: every benchmark, each printed beside the floor it is compared with.
## The unpack benchmarks take about a second per round: a time-based
## benchtime would give them one round each, so they get UNPACKROUNDS.
bench: deps-bench
	set -o pipefail; $(GO) test -run '^$$' -bench . -skip '^BenchmarkUnpack' -benchtime $(BENCHTIME) -count 1 $(PKGS) | ./scripts/benchratio
	set -o pipefail; $(GO) test -run '^$$' -bench '^BenchmarkUnpack' -benchtime $(UNPACKROUNDS)x -count 1 ./internal/image | ./scripts/benchratio

## fuzz: each fuzz target for FUZZTIME (go test -fuzz runs one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	$(GO) clean -testcache
