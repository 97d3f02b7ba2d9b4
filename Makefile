# hop3: `make run` sets up what is missing and runs the daemon; `make test`
# runs `make lint` (go vet, staticcheck), then every test (unit and
# end-to-end, against real git, ssh, Caddy, Granian).

GO       ?= go
TOOLS    ?= $(CURDIR)/.tools
export HOP3_TEST_CACHE ?= $(CURDIR)/.cache/test
# Tests must not pick up the settings of an installed hop3 (/etc/hop3/hop3.env).
export HOP3_CONFIG ?= /dev/null
export PATH := $(TOOLS)/bin:$(PATH)
# staticcheck at a pinned version, fetched through the Go module proxy on
# first use; go.mod stays free of tool dependencies.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)

.PHONY: all setup setup-test build run lint test test-short fuzz bench clean

all: build

setup:
	@bash scripts/setup.sh

# The tests also build Java, Ruby and PHP apps: their toolchains too.
setup-test:
	@HOP3_SETUP_LANGS=1 bash scripts/setup.sh

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/hop3 ./cmd/hop3

run: setup build
	bin/hop3 serve

lint:
	@files=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$files" ]; then echo "gofmt would change: $$files"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# lint first: a finding fails the run before the long tests start.
test: lint setup-test
	$(GO) test -race -timeout 20m -count=1 ./...

# Every native fuzz target (func FuzzXxx in a _test.go file), one after
# another, each for FUZZTIME.
FUZZTIME ?= 30s
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^\./\.' | sort); do \
		pkg=./$$(dirname $${f#./}); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Not part of `make test` or CI: measures hop3 against nginx + uWSGI on
# loopback and writes BENCHMARKS.md (about 12 minutes on 2 cores).
bench: setup
	@bash bench/setup.sh
	$(GO) run ./bench -out BENCHMARKS.md

test-short:
	$(GO) test -short -count=1 ./...

clean:
	rm -rf bin
