# Warden's build and test entry points. `make test` is what CI runs (.ci/run)
# and what a developer runs on a fresh machine: it installs what the tests
# need, then checks formatting, vets and runs every test with the race detector.

GO ?= go
GOFLAGS_TEST ?= -race -count=1 -timeout 20m

.PHONY: test deps fmt-check vet unit load build bench fuzz clean

test: deps fmt-check vet unit load

deps:
	@./scripts/test-deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test $(GOFLAGS_TEST) ./...

# Resident-memory limits hold only without the race detector (which
# multiplies memory several times), so they are checked in a second run.
load:
	$(GO) test -count=1 -run 'TestThousandSessions' ./gateway

build:
	$(GO) build -o bin/warden ./cmd/warden

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Every fuzz target for FUZZTIME each (default 10s): make fuzz FUZZTIME=1m
fuzz:
	@GO=$(GO) ./scripts/fuzz.sh

clean:
	rm -rf bin
