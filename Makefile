# Entry points: `make run` for the demo proxy, `make test` for everything CI checks.
# scripts/setup.sh installs the toolchain pieces (wasm target, pinned Envoy) and is a no-op
# when they are there, so every target can depend on it.

SHELL := /bin/bash
CARGO ?= cargo
WASM := target/wasm32-wasip1/release/proxy_auth.wasm

# Absolute, so tests find them whatever directory cargo runs them from.
ENVOY_BIN ?= $(CURDIR)/.venv/bin/envoy
PROXY_AUTH_WASM ?= $(CURDIR)/$(WASM)
export ENVOY_BIN PROXY_AUTH_WASM

.PHONY: all setup build run test lint clean bench dist

all: build

setup:
	scripts/setup.sh

build: setup
	$(CARGO) build --release --target wasm32-wasip1 -p proxy-auth

# MODE=external: users other than demo are checked by the demo auth service.
MODE ?= local
export MODE

# Two builds: a `--bin` would apply to both packages and skip the service's binary.
run: build
	$(CARGO) build -p proxy-auth-e2e --bin demo-upstream
	$(CARGO) build -p proxy-auth-service
	scripts/run-demo.sh

# The second clippy checks the filter as it really ships: built for wasm, where the
# proxy-wasm host calls exist; the third, the bench's own modules, which use the core
# crate and would otherwise only break at `make bench`.
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --all --manifest-path bench/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 -p proxy-auth --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path bench/Cargo.toml --target wasm32-wasip1 --workspace \
		--target-dir target/bench -- -D warnings

# --no-fail-fast: one failing test binary must not hide the results of the others.
test: build lint
	$(CARGO) test --no-fail-fast

# Throughput and memory against native basic_auth and a minimal wasm filter;
# writes bench/results.md. A few minutes; not part of `make test`.
bench: build
	bench/run.sh

# The module users deploy: size-optimised, with its sha256, under dist/ (see scripts/dist.sh).
# e2e/tests/deploy.rs builds it too, so `make test` checks its size and runs it in Envoy.
dist: setup
	CARGO="$(CARGO)" scripts/dist.sh

clean:
	$(CARGO) clean
