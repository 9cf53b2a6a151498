# Drives assay: dependencies, builds, the local stack, tests and benchmarks.
#   make deps     install packages, OpenJDK/Maven and the Kafka 3.9 jars (idempotent)
#   make build    release build (RelWithDebInfo) into build/, executables in build/bin/
#   make test     deps, sanitizer build into build/sanitize/, local stack up, all tests
#   make bench    deps, release build, local stack up, every benchmark
#   make stack-up / stack-down / format

MAKEFLAGS += --no-print-directory
JOBS      ?= $(shell nproc)
BUILD     ?= build
SAN_BUILD ?= build/sanitize
STACK_ENV  = eval "$$(compose/stack env)"
# where compose/deps keeps Kafka and the interoperability test's Python environment
ASSAY_CACHE_DIR ?= $(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME),$(HOME)/.cache)/assay
export ASSAY_CACHE_DIR
export ASSAY_INTEROP_PYTHON ?= $(ASSAY_CACHE_DIR)/venv/bin/python3

.PHONY: all deps build build-sanitize test test-unit bench stack-up stack-down format clean

all: build

deps:
	@compose/deps

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASSAY_SANITIZE=OFF >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-sanitize:
	@cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DASSAY_SANITIZE=ON >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS)

stack-up:
	@compose/stack up

stack-down:
	@compose/stack down

# The stack stays up after the tests so that a second run starts at once; `make stack-down`
# stops it.
test: deps build-sanitize stack-up
	@$(STACK_ENV) && export $$(compose/stack env | cut -d= -f1) && \
		ctest --test-dir $(SAN_BUILD) --output-on-failure --no-tests=error -j 1

test-unit: build-sanitize
	@ctest --test-dir $(SAN_BUILD) --output-on-failure --no-tests=error -L unit

bench: deps build stack-up
	@$(STACK_ENV) && export $$(compose/stack env | cut -d= -f1) && \
		tests/bench/run $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
