#!/usr/bin/env bash
# `make bench` (after `make build`): installs the load generator, builds what the
# bench runs besides the filter (the external auth service; the minimal wasm
# filter it compares against and the profiling ladder, both in bench/), then runs
# bench/bench.py with any arguments given (`bench/run.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}

bench/setup.sh
"$CARGO" build --release -p proxy-auth-service
# bench/ is its own workspace with its own target dir: the project's members and
# lock stay untouched.
"$CARGO" build --release --target wasm32-wasip1 --workspace \
  --manifest-path bench/Cargo.toml --target-dir target/bench
exec python3 bench/bench.py "$@"
