#!/usr/bin/env bash
# Installs what `make bench` needs beyond `make build`: the load generator wrk
# (Debian's package). A no-op when it is there, so the bench target can call it
# every time; scripts/setup.sh stays about building and testing.
set -euo pipefail

if ! command -v wrk >/dev/null; then
  printf 'bench/setup: installing wrk\n' >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
