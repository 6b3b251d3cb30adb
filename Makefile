# Atelier. `make run` serves it on http://127.0.0.1:8080; `make test` runs every suite from a clean clone.
SHELL := /bin/bash
SWIFT_FLAGS ?= -c release --static-swift-stdlib
export PATH := $(PATH):/opt/swift/usr/bin

.PHONY: deps build run test test-swift test-e2e bench reload clean

deps:
	@scripts/stack.sh deps

build: deps
	swift build $(SWIFT_FLAGS)

run: build
	@scripts/stack.sh run

test: build
	@scripts/test.sh

bench: build
	@scripts/bench.sh

# Rolling restart of one function under `make run`: make reload FUNCTION=health
reload:
	@scripts/stack.sh reload $(FUNCTION)

clean:
	rm -rf .build .run .run-* results
