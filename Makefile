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
               openssh-client openssl gcc make libc6-dev python3-pip python3-venv nodejs
DEB_BENCH   := bubblewrap buildah

.PHONY: all build test test-short test-gvisor lint bench bench-gvisor fuzz deps deps-bench scale clean helper-image

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

# Packages that read trees a sandbox can write: descriptors only (treelint).
TREE_PKGS   := internal/untrusted internal/snapshot

## test: everything CI checks, as timed steps and phases (scripts/testrun):
## deps; one build of every test binary (go test -c) and of the examples;
## then lint (gofmt, vet, staticcheck) at the lowest CPU priority, beside
## the phases of scripts/test-phases, which run side by side: the
## race-enabled suite, the builder's suites in full without -race, the
## public suite again through the helper (CC_USE_HELPER=1), the sandbox
## tests again as an unprivileged user (from binaries built once, as the
## user running make), and the gVisor runs. Work that does not depend on
## the phase runs in full once and as a selection elsewhere; each test a
## phase leaves out is named in scripts/test-phases with the reason.
## It ends with a summary: each step's and phase's time and CPU, what the
## phases leave out and why, every skipped test with its reason, and the
## TEST_SUITES' cases. Add a phase with a line in
## scripts/test-phases. TEST_JOBS test binaries run at once.
TEST_JOBS   ?= 3
TEST_SUITES ?= TestDockerfileConformance
test:
	@echo "== compiling scripts/testrun"
	@$(GO) run ./scripts/testrun -jobs $(TEST_JOBS) $(addprefix -suite ,$(TEST_SUITES)) \
	  -step 'deps=$(MAKE) --no-print-directory deps' \
	  -beside 'lint=$(MAKE) --no-print-directory lint' \
	  scripts/test-phases

## test-gvisor: the public suite on the gVisor backend, with the test binary
## as runsc (tag gvisor links it in; runsc needs a static binary, so no cgo
## and no race detector), then the gVisor tests and the hv conformance suite.
## The same selection as scripts/test-phases' gvisor phase (make test runs it).
GVISOR_SUITE := ^(TestExec|TestFS|TestFileAPI|TestPathEscape|TestNetConn|TestListener|TestHTTPBothWays|TestPacketAndUnix|TestExposeForward|TestSnapshotRace|TestSnapshotAndFork|TestSnapshotForksAreIsolated|TestSnapshotKeys|TestSnapshotReopenAcrossProcesses|TestSnapshotExport|TestSnapshotRedoneChange|TestEgress.*|TestOpenFilesLimit|TestLifecycle|TestInterruptSparesSandboxes|TestConfinedOnEveryThread|TestAgentSurvivesSignals|TestAgentLimitsNotSettable|TestAgentOwnProcFiles|TestReadOnlyMount|TestCgroupsUnderCaller|TestHostKilledCgroups|TestGVisor.*)$$
test-gvisor:
	CGO_ENABLED=0 CC_BACKEND=gvisor $(GO) test -tags gvisor -count=1 -timeout 30m -run '$(GVISOR_SUITE)' -skip '/(vm|descriptors)$$' .
	CGO_ENABLED=0 $(GO) test -tags gvisor -count=1 -timeout 20m -run 'TestExamples/gvisor' .
	CGO_ENABLED=0 $(GO) test -tags gvisor -count=1 -timeout 20m ./internal/hv/gvisor

## test-short: the suite without lint and race detector, for quick iterations.
test-short:
	$(GO) test -count=1 $(PKGS)

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' ':(exclude)testdata/*' ':(exclude)*/testdata/*' 2>/dev/null || find . -name '*.go' -not -path '*/testdata/*')); \
	  if [ -n "$$fmt" ]; then echo "gofmt would change:"; echo "$$fmt"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	$(GO) run ./internal/tools/treelint $(TREE_PKGS)
	$(GO) run ./internal/tools/guidelint .

## bench: every benchmark, each printed beside the floor it is compared with.
## The unpack benchmarks take about a second per round: a time-based
## benchtime would give them one round each, so they get UNPACKROUNDS.
bench: deps-bench
	set -o pipefail; $(GO) test -run '^$$' -bench . -skip '^BenchmarkUnpack' -benchtime $(BENCHTIME) -count 1 $(PKGS) | ./scripts/benchratio
	set -o pipefail; $(GO) test -run '^$$' -bench '^BenchmarkUnpack' -benchtime $(UNPACKROUNDS)x -count 1 ./internal/image | ./scripts/benchratio

## bench-gvisor: the gVisor backend's benchmarks, each beside its floor (the
## test binary is runsc, so it is built like test-gvisor's).
bench-gvisor:
	set -o pipefail; CGO_ENABLED=0 $(GO) test -tags gvisor -run '^$$' -bench '^BenchmarkGVisor' -benchtime $(BENCHTIME) -count 1 . | ./scripts/benchratio

## fuzz: each fuzz target for FUZZTIME (go test -fuzz runs one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## helper-image: cc-helper's container image (deploy/Dockerfile), built by
## the SDK's own Build through cc build and written as an OCI archive,
## HELPER_IMAGE_OUT/cc-helper.tar (an OCI layout in a tar: podman load,
## skopeo copy oci-archive:, ctr images import take it), named
## HELPER_IMAGE_TAG. cc-helper is built here, statically, and copied in:
## the build gives its steps no network (built as make test's build step
## builds it, so the two share Go's build cache). The store is cc's
## (CC_CACHE_DIR).
HELPER_IMAGE_OUT ?= deploy/out
HELPER_IMAGE_TAG ?= cc-helper:latest
CA_BUNDLE        ?= /etc/ssl/certs/ca-certificates.crt
helper-image:
	@test -r $(CA_BUNDLE) || { echo "helper-image: no CA bundle at $(CA_BUNDLE) (install ca-certificates or set CA_BUNDLE)"; exit 1; }
	rm -rf $(HELPER_IMAGE_OUT)/context $(HELPER_IMAGE_OUT)/layout
	mkdir -p $(HELPER_IMAGE_OUT)/context
	CGO_ENABLED=0 $(GO) build -o $(HELPER_IMAGE_OUT)/context/cc-helper ./cmd/cc-helper
	cp $(CA_BUNDLE) $(HELPER_IMAGE_OUT)/context/ca-certificates.crt
	$(GO) run ./cmd/cc build -f deploy/Dockerfile -t $(HELPER_IMAGE_TAG) -o $(HELPER_IMAGE_OUT)/layout $(HELPER_IMAGE_OUT)/context
	tar -C $(HELPER_IMAGE_OUT)/layout --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf $(HELPER_IMAGE_OUT)/cc-helper.tar .
	rm -rf $(HELPER_IMAGE_OUT)/layout
	@echo "helper-image: $(HELPER_IMAGE_OUT)/cc-helper.tar ($(HELPER_IMAGE_TAG))"

## scale: start N idle sandboxes, print the time and memory they took,
## close them and check that nothing is left (scripts/scale).
N ?= 1000
scale:
	$(GO) build -o /tmp/cc-scale ./scripts/scale
	nice -n 10 /tmp/cc-scale -n $(N)

clean:
	$(GO) clean -testcache
